package repo

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"sigs.k8s.io/yaml"
)

// helm.sh/helm/v4/pkg/repo/v1 cannot be imported here without adding its
// plugin dependencies (extism) to go.mod, so these mirror its IndexFile and
// ChartVersion types and loadIndex (v4.3.1) exactly: json.Valid, then
// yaml.UnmarshalStrict into the same types, Metadata.Validate per entry and
// SortEntries. They write the benchmark's index and measure Helm's loader.

type helmChartVersion struct {
	*chart.Metadata
	URLs                    []string  `json:"urls"`
	Created                 time.Time `json:"created"`
	Removed                 bool      `json:"removed,omitempty"`
	Digest                  string    `json:"digest,omitempty"`
	ChecksumDeprecated      string    `json:"checksum,omitempty"`
	EngineDeprecated        string    `json:"engine,omitempty"`
	TillerVersionDeprecated string    `json:"tillerVersion,omitempty"`
	URLDeprecated           string    `json:"url,omitempty"`
}

type helmIndexFile struct {
	ServerInfo  map[string]any                 `json:"serverInfo,omitempty"`
	APIVersion  string                         `json:"apiVersion"`
	Generated   time.Time                      `json:"generated"`
	Entries     map[string][]*helmChartVersion `json:"entries"`
	PublicKeys  []string                       `json:"publicKeys,omitempty"`
	Annotations map[string]string              `json:"annotations,omitempty"`
}

func helmSort(cvs []*helmChartVersion) {
	slices.SortStableFunc(cvs, func(a, b *helmChartVersion) int {
		x, err1 := semver.NewVersion(a.Version)
		y, err2 := semver.NewVersion(b.Version)
		if err1 != nil || err2 != nil {
			return 0
		}
		return y.Compare(x)
	})
}

// helmLoadIndexFile is Helm's repo.LoadIndexFile.
func helmLoadIndexFile(path string) (*helmIndexFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	i := &helmIndexFile{}
	if json.Valid(data) {
		err = json.Unmarshal(data, i)
	} else {
		err = yaml.UnmarshalStrict(data, i)
	}
	if err != nil {
		return nil, err
	}
	for name, cvs := range i.Entries {
		for idx, v := range slices.Backward(cvs) {
			if v.Metadata == nil {
				v.Metadata = &chart.Metadata{}
			}
			if v.APIVersion == "" {
				v.APIVersion = chart.APIVersionV1
			}
			var verr chart.ValidationError
			if err := v.Validate(); err != nil && !errors.As(err, &verr) {
				cvs = append(cvs[:idx], cvs[idx+1:]...)
			}
		}
		helmSort(cvs)
		i.Entries[name] = cvs
	}
	if i.APIVersion == "" {
		return nil, errors.New("no API version specified")
	}
	return i, nil
}
