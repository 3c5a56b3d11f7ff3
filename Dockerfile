# Image of the charter daemon (`charter daemon install` runs it). goreleaser
# builds the static binary (CGO_ENABLED=0) and puts it in the build context;
# this file only copies it onto distroless/static, running as non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY charter /usr/local/bin/charter
USER 65532:65532
EXPOSE 9292
ENTRYPOINT ["/usr/local/bin/charter"]
CMD ["daemon", "run", "--listen", ":9292", "--log-json"]
