"""HTTP routes: parse and validate, hand facts to the engine and the metrics, render OpenAI shapes."""
