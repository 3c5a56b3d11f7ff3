package testenv

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const sampleMetrics = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="APPLY",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="APPLY",version="v1"} 3
apiserver_request_total{code="201",component="apiserver",dry_run="All",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 2
apiserver_request_total{code="200",component="",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="namespace",subresource="",verb="LIST",version="v1"} 1.5e+01
apiserver_request_total_other{verb="GET"} 99
apiserver_request_totals 98
apiserver_request_duration_seconds_count{verb="GET"} 97
`

func TestParseRequestCounts(t *testing.T) {
	got, err := ParseRequestCounts(strings.NewReader(sampleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	want := RequestCounts{
		{Verb: "APPLY", Resource: "configmaps", Code: "200", Count: 10},
		{Verb: "APPLY", Resource: "deployments", Code: "201", DryRun: true, Count: 2},
		{Verb: "GET", Subresource: "/readyz", Code: "200", Count: 4},
		{Verb: "LIST", Resource: "secrets", Code: "200", Count: 15},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsed series (-want +got):\n%s", diff)
	}
	if got.Total() != 31 || got.Writes() != 10 || got.DryRuns() != 2 {
		t.Errorf("Total %v Writes %v DryRuns %v, want 31 10 2", got.Total(), got.Writes(), got.DryRuns())
	}
}

func TestRequestCountsSub(t *testing.T) {
	before := RequestCounts{{Verb: "GET", Resource: "pods", Code: "200", Count: 5}}
	after := RequestCounts{
		{Verb: "GET", Resource: "pods", Code: "200", Count: 8},
		{Verb: "PATCH", Resource: "pods", Code: "200", Count: 2},
		{Verb: "GET", Resource: "nodes", Code: "200", Count: 0},
	}
	want := RequestCounts{
		{Verb: "GET", Resource: "pods", Code: "200", Count: 3},
		{Verb: "PATCH", Resource: "pods", Code: "200", Count: 2},
	}
	if diff := cmp.Diff(want, after.Sub(before)); diff != "" {
		t.Errorf("difference (-want +got):\n%s", diff)
	}
}

func TestParseRequestCountsRejectsBrokenLines(t *testing.T) {
	for name, text := range map[string]string{
		"unterminated labels": `apiserver_request_total{verb="GET" 3`,
		"bad value":           `apiserver_request_total{verb="GET"} many`,
		"no value":            `apiserver_request_total{verb="GET"}`,
		"unterminated value":  `apiserver_request_total{verb="GET} 3`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseRequestCounts(strings.NewReader(text)); err == nil {
				t.Errorf("no error for %q", text)
			}
		})
	}
}
