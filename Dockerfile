# pgquorum: a static binary on a distroless base, running as a non-root user.
# It runs beside PostgreSQL, so give it the node's network (--network host) and
# a config: docker run --network host -v /etc/pgquorum:/etc/pgquorum:ro pgquorum
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# pgquorum version reports these; make takes them from git when unset:
# docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#   --build-arg COMMIT=$(git rev-parse HEAD) .
ARG VERSION
ARG COMMIT
ARG BUILD_DATE
RUN make static ${VERSION:+VERSION=$VERSION} ${COMMIT:+COMMIT=$COMMIT} ${BUILD_DATE:+BUILD_DATE=$BUILD_DATE}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/pgquorum /usr/local/bin/pgquorum
USER nonroot:nonroot
EXPOSE 5999
ENTRYPOINT ["/usr/local/bin/pgquorum"]
CMD ["serve", "--config", "/etc/pgquorum/pgquorum.yaml"]
