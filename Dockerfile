# Rampart images.
#
#   docker build -t rampart/gateway:dev .                               # gateway + gatewayctl (default target)
#   docker build -t rampart/demo-upstream:dev --target demo-upstream .  # the demo API
#
# docker-compose.yml builds both; `make docker` too. Only the standard
# Dockerfile syntax is used (no BuildKit-only flags), so the legacy builder
# that docker-compose 1.x drives builds it as well as BuildKit does.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Static binaries: they run on distroless/static (no libc) and scratch.
ENV CGO_ENABLED=0
# Dependencies first, in layers rebuilt only when go.mod or go.sum change:
# the modules are downloaded once, and the standard library and the
# third-party packages the binaries import are compiled into the build
# cache once, so a code change recompiles Rampart's own packages only. (The
# list only warms the cache: a stale entry is skipped, never an error.)
COPY go.mod go.sum ./
RUN go mod download && go mod verify
RUN for p in std github.com/labstack/echo/v4 github.com/redis/go-redis/v9 \
        github.com/go-redis/redis_rate/v10 github.com/prometheus/client_golang/prometheus \
        github.com/prometheus/client_golang/prometheus/collectors \
        github.com/prometheus/client_golang/prometheus/promhttp \
        github.com/corazawaf/libinjection-go go.yaml.in/yaml/v3 golang.org/x/text/unicode/norm; do \
        go build -trimpath "$p" 2>/dev/null || echo "cache warm-up: $p skipped"; \
    done
COPY . .
# gateway -version prints it (make docker passes the git description).
ARG VERSION=dev
RUN go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/ ./cmd/gateway ./cmd/gatewayctl ./cmd/demo-upstream

# The demo API the compose stack puts behind the gateway. gatewayctl comes
# along only as a shell-free HTTP probe for the compose healthcheck.
FROM gcr.io/distroless/static-debian12:nonroot AS demo-upstream
COPY --from=build /out/demo-upstream /out/gatewayctl /usr/local/bin/
USER 65532:65532
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/demo-upstream"]
CMD ["-listen", ":5000"]

# The gateway: distroless/static has CA certificates, tzdata and a nonroot
# user (65532), and no shell. The last stage is the default target.
FROM gcr.io/distroless/static-debian12:nonroot AS gateway
ARG VERSION=dev
LABEL org.opencontainers.image.title="rampart-gateway" org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/gateway /out/gatewayctl /usr/local/bin/
USER 65532:65532
# 8080: the proxy. 9090: health, metrics and the admin API; the gateway binds
# it to 127.0.0.1 unless GATEWAY_ADMIN_LISTEN says otherwise.
EXPOSE 8080 9090
# Ready (store reachable or degraded-but-serving) on the default admin
# listener; compose, which moves that listener, sets its own.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s CMD ["/usr/local/bin/gatewayctl", "-timeout", "2s", "check", "http://127.0.0.1:9090/readyz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
