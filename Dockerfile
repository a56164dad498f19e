# syntax=docker/dockerfile:1
# One image for every optisweep container: the API, the one-shot migration and the Ray nodes.

FROM python:3.11-slim

# CPU wheels by default. A GPU image passes a CUDA index matching the host's driver:
#   TORCH_INDEX=https://download.pytorch.org/whl/<cuda-tag> docker compose build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 optisweep
WORKDIR /app

# torch first, pinned and from its own index: the project's looser "torch>=2.4" is then already
# met, so `pip install .` keeps this build instead of pulling the multi-GB CUDA one from PyPI.
RUN pip install "torch==2.13.0" --index-url "${TORCH_INDEX}"

# optisweep/ links service/, workers/, optimizers/ and migrations/ in (one import name); the
# build fetches the dashboard's ECharts from the npm registry, as package-lock.json pins it.
COPY pyproject.toml setup.py README.md ./
COPY optisweep ./optisweep
COPY optimizers ./optimizers
COPY workers ./workers
COPY service ./service
COPY migrations ./migrations
RUN pip install ".[server,postgres,cmaes]" && rm -rf build ./*.egg-info

USER optisweep
EXPOSE 8000
CMD ["optisweep", "serve", "--host", "0.0.0.0", "--port", "8000"]
