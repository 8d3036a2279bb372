# pyexec as a container image: `pyexec serve` on 0.0.0.0:3002.
#
#   podman build -t pyexec .                       (or docker build)
#   podman build --build-arg BLENDER=true -t pyexec .   (with Blender, for the render job)
#
# The sandbox needs privileges a default container lacks: run it with
# exactly those of docs/container.md (compose.yaml and deploy/kubernetes
# carry them), never --privileged.

# ---------------------------------------------------------------------------
# build: meson and ninja, installed under /usr/local into /out
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev pkg-config meson ninja-build \
      libseccomp-dev libjansson-dev libmicrohttpd-dev libyaml-dev \
      libhiredis-dev libcurl4-openssl-dev libssl-dev \
      libpython3.11-dev python3.11-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No unit tests (cmocka) and no man page (scdoc) in the image.
RUN meson setup /build --prefix=/usr/local -Dtests=disabled -Dman=disabled -Dwerror=true \
 && ninja -C /build \
 && DESTDIR=/out meson install -C /build --no-rebuild \
 && rm -rf /out/usr/local/share/doc

# ---------------------------------------------------------------------------
# runtime: the shared libraries pyexec links and loads, the standard library
# the sandbox binds from /usr, Python and Pillow for the compose job
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim
# BLENDER=true adds Blender for the render job (about 1 GB more); without
# it the render job is listed but not ready.
ARG BLENDER=false
# libseccomp is not installed: the filter is compiled to BPF at build time.
# libmicrohttpd12 is dlopen()ed by `pyexec serve`; libhiredis0.14 (a Redis
# QUEUE_URL), libcurl4 and libssl3 (callbacks, with ca-certificates for https)
# when they are first used.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libjansson4 libyaml-0-2 libmicrohttpd12 libexpat1 zlib1g \
      libhiredis0.14 libcurl4 libssl3 ca-certificates \
      libpython3.11-stdlib python3 python3-pil tini \
      python3-numpy python3-matplotlib python3-pandas \
      $( [ "$BLENDER" = true ] && echo blender ) \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /srv/pyexec/templates /srv/pyexec/uploads /srv/pyexec/composed /srv/pyexec/renders
COPY --from=build /out/ /
COPY scripts/container-entrypoint.sh /usr/local/libexec/pyexec/container-entrypoint
# The service listens on 127.0.0.1 by default: inside a container it must
# listen on the container's interfaces to be published.
ENV BIND=0.0.0.0 PORT=3002
EXPOSE 3002
# Python is in the image already (the compose job's interpreter): no curl.
# It asks on loopback, on PORT: with BIND set to one other address, replace it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/bin/python3", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('PORT', '3002'), timeout=4)"]
STOPSIGNAL SIGTERM
# PID 1 is tini: it forwards SIGTERM to pyexec (the graceful stop) and
# exits with its status, and reaps the orphans that `podman exec` or
# `kubectl exec` sessions leave: pyexec reaps the children it starts, not
# processes the kernel hands to PID 1. The entrypoint makes the container's
# cgroup writable where it may, then execs `pyexec serve` (docs/container.md).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/libexec/pyexec/container-entrypoint"]
CMD ["serve"]
