# The fakeai image that docker-compose.yml runs.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fakeai ./fakeai
COPY exporter ./exporter
COPY bridge ./bridge
RUN pip install --no-cache-dir .
EXPOSE 8000
# Inside a container the server must listen on all interfaces; compose publishes it on 127.0.0.1 only.
CMD ["python", "-m", "fakeai", "server", "--host", "0.0.0.0", "--port", "8000"]
