"""Write fakeai's tokenizer as a Hugging Face tokenizer folder, for clients that count tokens themselves.

``python -m fakeai tokenizer DIR`` writes ``tokenizer.json`` and ``tokenizer_config.json``. Loaded with
``tokenizers.Tokenizer.from_file`` or ``transformers.AutoTokenizer.from_pretrained(DIR)``, it counts any text
exactly as the server does, its ids are the server's ``/tokenize`` ids, it decodes ids back to the text, and
its chat template renders a conversation to the tokens the server counts for it. Benchmark clients take the
folder where they take a model name: AIPerf ``--tokenizer DIR``, GuideLLM ``--processor DIR``,
inference-perf ``tokenizer: {pretrained_model_name_or_path: DIR}``.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from fakeai.engine.tokens import END_MARKER, OTHER_ROLE_MARKER, PIECE_PATTERN, ROLES, SPECIAL_TOKENS
from fakeai.engine.vocabulary import UNKNOWN_TOKEN, entries


def chat_template() -> str:
    """The Jinja template of ``fakeai.engine.tokens.chat_prompt_tokens``: a role marker, the message's text
    (its text parts, for a list of parts), the end marker; then the marker that primes the reply."""
    roles = ", ".join(repr(role) for role in ROLES)
    return (
        "{% for message in messages %}"
        f"{{% if message['role'] in [{roles}] %}}{{{{ '<|' + message['role'] + '|>' }}}}"
        f"{{% else %}}{{{{ '{OTHER_ROLE_MARKER}' }}}}{{% endif %}}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% elif message['content'] %}{% for part in message['content'] %}"
        "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
        f"{{{{ '{END_MARKER}' }}}}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
    )


def build() -> Any:
    """The ``tokenizers.Tokenizer``: fakeai's rule as the pre-tokenizer, one vocabulary entry per piece."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel(dict(entries()), unk_token=UNKNOWN_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # pieces carry their own spaces: the text is their concatenation
    # ``<unk>`` stays an ordinary entry: as an added token, the text "<unk>" would count as one token here
    # and as three on the server.
    tokenizer.add_special_tokens([AddedToken(marker, special=True, normalized=False) for marker in SPECIAL_TOKENS])
    return tokenizer


def config(max_model_len: int) -> dict[str, Any]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_model_len,
        "eos_token": END_MARKER,
        "pad_token": END_MARKER,
        # transformers would otherwise drop the space before punctuation when decoding.
        "clean_up_tokenization_spaces": False,
        "chat_template": chat_template(),
    }


def write(directory: Path, max_model_len: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer_file = directory / "tokenizer.json"
    config_file = directory / "tokenizer_config.json"
    build().save(str(tokenizer_file))
    config_file.write_text(json.dumps(config(max_model_len), indent=2) + "\n", encoding="utf-8")
    return [tokenizer_file, config_file]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="folder to write tokenizer.json and tokenizer_config.json to")
    parser.add_argument(
        "--max-model-len",
        type=int,
        default=8192,
        help="model_max_length of the config: the server's --max-model-len (default: %(default)s)",
    )


def main(args: argparse.Namespace) -> int:
    for path in write(args.directory, args.max_model_len):
        print(path)
    return 0
