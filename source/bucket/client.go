package bucket

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/charter-sh/charter/source"
)

// Environment variables read when the options carry no keys.
const (
	EnvAccessKey    = "AWS_ACCESS_KEY_ID"
	EnvSecretKey    = "AWS_SECRET_ACCESS_KEY"
	EnvSessionToken = "AWS_SESSION_TOKEN"
)

// maxRetries bounds the client's own retries of one request on transient
// errors (the daemon polls again anyway); wrong credentials are not retried.
const maxRetries = 3

// NewClient returns an S3 client for loc. Credentials are
// opts.AccessKey/opts.SecretKey, else AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN when set), else none
// (anonymous requests, for public buckets). It makes no request.
func NewClient(loc Location, opts source.Options) (*minio.Client, error) {
	return newClient(loc, opts, nil)
}

// newClient is NewClient with a transport (nil: the default); tests count
// requests through it.
func newClient(loc Location, opts source.Options, rt http.RoundTripper) (*minio.Client, error) {
	creds, err := credentialsFor(opts)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", loc, err)
	}
	if rt == nil {
		t, err := minio.DefaultTransport(loc.Secure)
		if err != nil {
			return nil, fmt.Errorf("bucket %s: transport: %w", loc, err)
		}
		rt = t
	}
	c, err := minio.New(loc.Endpoint, &minio.Options{
		Creds:      creds,
		Secure:     loc.Secure,
		Region:     loc.Region,
		Transport:  rt,
		MaxRetries: maxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: client: %w", loc, err)
	}
	return c, nil
}

func credentialsFor(opts source.Options) (*credentials.Credentials, error) {
	ak, sk := opts.AccessKey, opts.SecretKey
	token := ""
	if ak == "" && sk == "" {
		ak, sk, token = os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey), os.Getenv(EnvSessionToken)
		if (ak == "") != (sk == "") {
			return nil, fmt.Errorf("set both %s and %s, or neither", EnvAccessKey, EnvSecretKey)
		}
	}
	if (ak == "") != (sk == "") {
		return nil, errors.New("an access key needs its secret key and a secret key its access key")
	}
	if ak == "" {
		return credentials.NewStatic("", "", "", credentials.SignatureAnonymous), nil
	}
	return credentials.NewStaticV4(ak, sk, token), nil
}

// statusCode is the HTTP status of an S3 error response, 0 for other errors.
func statusCode(err error) int {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.StatusCode
	}
	return 0
}

// IsPreconditionFailed reports whether err is an S3 "412 Precondition
// Failed": a conditional request (If-Match, If-None-Match) lost a race.
func IsPreconditionFailed(err error) bool {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.StatusCode == http.StatusPreconditionFailed || resp.Code == "PreconditionFailed"
	}
	return false
}

// IsNoSuchBucket reports whether err says the bucket does not exist.
func IsNoSuchBucket(err error) bool {
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.Code == "NoSuchBucket"
}

// IsNotFound reports whether err says the object does not exist.
func IsNotFound(err error) bool {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket")
	}
	return false
}
