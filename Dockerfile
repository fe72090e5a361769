# The OneStop app image (one app node). Rasa runs from bot/Dockerfile.rasa.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install -r requirements.lock
COPY routing routing
COPY channels channels
COPY ivr ivr
COPY bot/__init__.py bot/*.py bot/
COPY agent_console agent_console
COPY knowledge knowledge
COPY onestop onestop
COPY config config
RUN pip install --no-deps -e . && useradd --system --uid 10001 onestop && mkdir -p /app/var \
    && chown onestop /app/var
USER onestop
EXPOSE 8080 2525
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status == 200 else 1)"
CMD ["python", "-m", "onestop", "run"]
