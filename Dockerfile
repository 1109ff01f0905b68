# One image for every role of Vivace (docs/deploy.md):
#   docker build -t vivace:local .
#   docker run --rm vivace:local serve --role rate
# The build stage compiles a static binary (no cgo) and the example
# mediation plugins; the final stage is a small base with a non-root user.
FROM golang:1.26-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/vivace ./cmd/vivace \
 && go build -trimpath -ldflags "-s -w" -o /out/plugins/telco ./plugins/mediation/clients/telco \
 && go build -trimpath -ldflags "-s -w" -o /out/plugins/cloud ./plugins/mediation/clients/cloud \
 && cd /out/plugins && sha256sum telco cloud > SHA256SUMS

FROM alpine:3.21
# ca-certificates: TLS to brokers, the database and the core; tzdata: the
# clients' timestamp zones.
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -g 10001 vivace && adduser -D -H -u 10001 -G vivace vivace \
 && mkdir -p /var/lib/vivace && chown vivace:vivace /var/lib/vivace
COPY --from=build /out/vivace /usr/local/bin/vivace
# The example plugins, with their checksums for the client settings'
# plugin.sha256 (docs/plugins.md).
COPY --from=build /out/plugins /opt/vivace/plugins
USER 10001:10001
ENV VIVACE_DATA_DIR=/var/lib/vivace VIVACE_HTTP_ADDR=:8080
VOLUME /var/lib/vivace
EXPOSE 8080
ENTRYPOINT ["vivace"]
CMD ["serve", "--role", "all"]
