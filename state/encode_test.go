package state

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMarshal(t *testing.T) {
	cases := map[string]*Release{
		"full release": {
			APIVersion: APIVersion, Kind: KindRelease, Name: "taco-tuesday", Namespace: "default",
			Chart: "charts/mychart-0.0.1.tgz", Version: ">=1.0.0", ChartPath: "/home/me/src/mychart",
			ValuesFiles: []string{"values/common.yaml"},
			Values: map[string]any{
				"replicaCount": 2,
				"image":        map[string]any{"repository": "nginx", "tag": "1.25"},
				"ratio":        0.5,
				"big":          1e20,
				"enabled":      true,
				"pullSecret":   nil,
				"ports":        []int{80, 443},
				"motd":         "hello\nworld\n",
			},
		},
		// Strings Helm's YAML 1.1 reader would take for something else are quoted.
		"strings that look like other types": {
			Chart: "c",
			Values: map[string]any{
				"yes": "yes", "on": "on", "y": "n", "null": "~", "num": "0777", "float": "1e3", "empty": "", "colon": "a: b",
			},
		},
		"params file without name": {Chart: "charts/x-1.0.0.tgz", Values: map[string]any{"a": "b"}},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := Marshal(r)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			golden(t, "marshal/"+slug(name)+".golden.yaml", out)

			got, err := Parse("out", out)
			if err != nil {
				t.Fatalf("output does not parse: %v", err)
			}
			want := r.DeepCopy()
			want.Values, _ = normalizeValues(want.Values)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("output reads back as (-want +got):\n%s", diff)
			}
		})
	}
}
