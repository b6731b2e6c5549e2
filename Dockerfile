# One image for every Encore process (worker, API, batch); the command picks the role.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY models models
COPY streams streams
COPY api api
COPY batch batch
COPY encore encore
# CPU-only torch for the ML extra (the default PyPI wheel carries CUDA).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu ".[ml,milvus]" \
    && pip install --no-deps recbole==1.2.1
USER nobody
CMD ["encore", "--help"]
