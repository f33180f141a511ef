# Streamgate image: a static streamgate binary (and fakellm, the demo's fake
# model server) on distroless, running as a non-root user.
#   docker build -t streamgate .
#   docker run streamgate validate -c /etc/streamgate/streamgate.yaml
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/streamgate/streamgate/cmd/streamgate/cli.Version=${VERSION}" \
      -o /out/streamgate ./cmd/streamgate \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/fakellm ./examples/fakellm/cmd/fakellm

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/streamgate /out/fakellm /usr/local/bin/
COPY examples/streamgate.yaml /etc/streamgate/streamgate.yaml
USER 65532:65532
# ext_proc, xDS, metrics/health
EXPOSE 50051 18001 9464
ENTRYPOINT ["/usr/local/bin/streamgate"]
CMD ["run", "-c", "/etc/streamgate/streamgate.yaml"]
