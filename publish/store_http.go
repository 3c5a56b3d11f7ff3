package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/charter-sh/charter/source"
	"github.com/charter-sh/charter/source/bucket"
)

// contentVersion prefixes the version of a file read from a server that
// sent no ETag: its SHA-256, compared again just before the write.
const contentVersion = "sha256:"

// httpStore is an http(s) destination that accepts PUT.
type httpStore struct {
	base    *url.URL // ends with "/"
	client  *http.Client
	timeout time.Duration
}

func newHTTPStore(dest string, opts Options) (*httpStore, error) {
	u, err := url.Parse(dest)
	if err != nil || u.Host == "" {
		return nil, errors.New("not a URL")
	}
	if u.User != nil {
		return nil, errors.New("credentials in the URL are not accepted; give a username and password")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want no query or fragment in the URL")
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	c := &http.Client{}
	if opts.HTTPClient != nil {
		*c = *opts.HTTPClient
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &authTransport{base: base, origin: origin(u), user: opts.Username, pass: opts.Password}
	t := opts.Bucket.Timeout
	if t <= 0 {
		t = bucket.DefaultTimeout
	}
	return &httpStore{base: u, client: c, timeout: t}, nil
}

// authTransport adds basic auth to requests for one origin only, so a
// redirect to another host, port or scheme never carries the credentials.
type authTransport struct {
	base       http.RoundTripper
	origin     string
	user, pass string
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if (t.user != "" || t.pass != "") && origin(r.URL) == t.origin {
		r = r.Clone(r.Context())
		r.SetBasicAuth(t.user, t.pass)
	}
	return t.base.RoundTrip(r)
}

// origin is scheme://host:port with the scheme's default port made
// explicit.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func (s *httpStore) url(name string) string {
	return s.base.JoinPath(name).String()
}

// statusErr describes a failed request by method, redacted URL and status.
func (s *httpStore) statusErr(method, name string, resp *http.Response) error {
	return fmt.Errorf("%s %s: %s", method, source.Redact(s.url(name)), resp.Status)
}

func (s *httpStore) readFile(ctx context.Context, name string, max int64) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(name), nil)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	req.Header.Set("Cache-Control", "no-cache") // a stale cached index would lose entries
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, redactErr(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, "", fmt.Errorf("read %s: %w", name, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, "", s.statusErr("GET", name, resp)
	case resp.ContentLength > max:
		return nil, "", fmt.Errorf("read %s: %d bytes, larger than the %d byte limit", name, resp.ContentLength, max)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, redactErr(err))
	}
	if int64(len(data)) > max {
		return nil, "", fmt.Errorf("read %s: larger than the %d byte limit", name, max)
	}
	version := resp.Header.Get("ETag")
	if version == "" || strings.HasPrefix(version, "W/") {
		// If-Match needs a strong ETag: compare the content instead.
		version = contentVersion + sha256Hex(data)
	}
	return data, version, nil
}

func (s *httpStore) writeFile(ctx context.Context, name string, data []byte, version string, replace bool) error {
	if strings.HasPrefix(version, contentVersion) {
		// No ETag to send: check the content is unchanged just before the
		// write (a narrower race than none).
		_, cur, err := s.readFile(ctx, name, MaxIndexSize)
		if errors.Is(err, errNotFound) {
			return fmt.Errorf("write %s: removed meanwhile: %w", name, errConflict)
		}
		if err != nil {
			return err
		}
		if cur != version {
			return fmt.Errorf("write %s: %w", name, errConflict)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.url(name), bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	req.Header.Set("Content-Type", contentType(name))
	switch {
	case version != "" && !strings.HasPrefix(version, contentVersion):
		req.Header.Set("If-Match", version)
	case version == "" && !replace:
		req.Header.Set("If-None-Match", "*")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, redactErr(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusPreconditionFailed && version == "":
		return fmt.Errorf("write %s: %w", name, errExists)
	case resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("write %s: %w", name, errConflict)
	}
	return s.statusErr("PUT", name, resp)
}

func (s *httpStore) removeFile(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, s.url(name), nil)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, redactErr(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return s.statusErr("DELETE", name, resp)
}

// redactErr rewrites a *url.Error so that its URL carries no credentials.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, source.Redact(ue.URL), ue.Err)
	}
	return err
}
