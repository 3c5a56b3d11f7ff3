package testenv

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RequestCount is one series of the API server's apiserver_request_total
// counter: how many requests with this verb, resource and response code it
// has served since it started.
type RequestCount struct {
	Verb        string // GET, LIST, WATCH, POST, PUT, PATCH, DELETE, APPLY, …
	Resource    string // empty for non-resource URLs (/version, /apis, /metrics)
	Subresource string
	Code        string
	DryRun      bool // the request asked for a dry run (?dryRun=All): nothing was stored
	Count       float64
}

// Write reports whether the request changed (or tried to change) state:
// a mutating verb, not a dry run. Server-side apply shows as verb APPLY.
func (c RequestCount) Write() bool {
	if c.DryRun {
		return false
	}
	switch c.Verb {
	case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "CREATE", "UPDATE":
		return true
	}
	return false
}

// RequestCounts are all series of apiserver_request_total at one moment.
type RequestCounts []RequestCount

// Total sums every series.
func (rc RequestCounts) Total() float64 {
	var n float64
	for _, c := range rc {
		n += c.Count
	}
	return n
}

// Writes sums the series whose verb writes (see RequestCount.Write).
func (rc RequestCounts) Writes() float64 {
	var n float64
	for _, c := range rc {
		if c.Write() {
			n += c.Count
		}
	}
	return n
}

// DryRuns sums the series of dry-run requests.
func (rc RequestCounts) DryRuns() float64 {
	var n float64
	for _, c := range rc {
		if c.DryRun {
			n += c.Count
		}
	}
	return n
}

// Sub returns rc minus before, series by series: the requests served
// between two scrapes. Series missing from before count from zero.
func (rc RequestCounts) Sub(before RequestCounts) RequestCounts {
	type key struct {
		verb, res, sub, code string
		dry                  bool
	}
	prev := make(map[key]float64, len(before))
	for _, c := range before {
		prev[key{c.Verb, c.Resource, c.Subresource, c.Code, c.DryRun}] += c.Count
	}
	out := make(RequestCounts, 0, len(rc))
	for _, c := range rc {
		d := c.Count - prev[key{c.Verb, c.Resource, c.Subresource, c.Code, c.DryRun}]
		if d > 0 {
			c.Count = d
			out = append(out, c)
		}
	}
	return out
}

// ParseRequestCounts reads apiserver_request_total from a Prometheus text
// exposition (the API server's /metrics), summing series that differ only
// in labels other than verb, resource, subresource, code and dry_run
// (group, version, scope, component).
func ParseRequestCounts(r io.Reader) (RequestCounts, error) {
	const name = "apiserver_request_total"
	type key struct {
		verb, res, sub, code string
		dry                  bool
	}
	sums := map[key]float64{}
	var order []key
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if !strings.HasPrefix(text, name) {
			continue
		}
		rest := text[len(name):]
		var labels map[string]string
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("metrics line %d: unterminated labels", line)
			}
			var err error
			if labels, err = parseLabels(rest[1:end]); err != nil {
				return nil, fmt.Errorf("metrics line %d: %w", line, err)
			}
			rest = rest[end+1:]
		} else if rest != "" && rest[0] != ' ' {
			continue // another metric sharing the prefix
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %d: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: value %q: %w", line, fields[0], err)
		}
		dry := labels["dry_run"] != ""
		k := key{labels["verb"], labels["resource"], labels["subresource"], labels["code"], dry}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	out := make(RequestCounts, 0, len(order))
	for _, k := range order {
		out = append(out, RequestCount{Verb: k.verb, Resource: k.res, Subresource: k.sub, Code: k.code, DryRun: k.dry, Count: sums[k]})
	}
	return out, nil
}

// parseLabels parses `a="x",b="y"` with Prometheus' escapes (\\, \", \n).
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, fmt.Errorf("malformed labels near %q", s)
		}
		name := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var val strings.Builder
		closed := false
		for i := 0; i < len(s); i++ {
			switch c := s[i]; {
			case c == '\\' && i+1 < len(s):
				i++
				switch s[i] {
				case 'n':
					val.WriteByte('\n')
				default:
					val.WriteByte(s[i])
				}
			case c == '"':
				s, closed = s[i+1:], true
			default:
				val.WriteByte(c)
			}
			if closed {
				break
			}
		}
		if !closed {
			return nil, fmt.Errorf("unterminated value of label %s", name)
		}
		out[name] = val.String()
		s = strings.TrimPrefix(strings.TrimSpace(s), ",")
	}
	return out, nil
}

// RequestCounts scrapes the API server's /metrics with the admin
// credentials and returns its apiserver_request_total series. The scrape
// itself is a request too: it shows (verb GET, no resource) in the next
// scrape.
func (e *Env) RequestCounts(ctx context.Context) (RequestCounts, error) {
	client, err := e.metricsClient()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.host+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape API server metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scrape API server metrics: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	rc, err := ParseRequestCounts(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape API server metrics: %w", err)
	}
	if len(rc) == 0 {
		return nil, errors.New("scrape API server metrics: no apiserver_request_total series")
	}
	return rc, nil
}

// APIRequests is the number of requests the API server has served since it
// started (the sum of apiserver_request_total). Subtract two readings to
// count the requests of a window.
func (e *Env) APIRequests(ctx context.Context) (float64, error) {
	rc, err := e.RequestCounts(ctx)
	if err != nil {
		return 0, err
	}
	return rc.Total(), nil
}

func (e *Env) metricsClient() (*http.Client, error) {
	pair, err := tls.X509KeyPair(e.admin.certPEM, e.admin.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load admin certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.caPEM) {
		return nil, errors.New("load control-plane CA certificate")
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		},
	}, nil
}
