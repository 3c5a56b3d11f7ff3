package bucket

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/charter-sh/charter/source"
)

func TestParseURL(t *testing.T) {
	cases := map[string]struct {
		location string
		opts     source.Options
		want     Location
	}{
		"s3 defaults to AWS": {
			location: "s3://team-state/prod",
			want:     Location{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "team-state", Prefix: "prod/"},
		},
		"s3 with endpoint and region options": {
			location: "s3://team-state/prod/cluster-1/",
			opts:     source.Options{Endpoint: "http://127.0.0.1:9000", Region: "eu-west-1"},
			want:     Location{Endpoint: "127.0.0.1:9000", Bucket: "team-state", Prefix: "prod/cluster-1/", Region: "eu-west-1"},
		},
		"endpoint without scheme is https": {
			location: "s3://bkt",
			opts:     source.Options{Endpoint: "minio.example.com:9000"},
			want:     Location{Endpoint: "minio.example.com:9000", Secure: true, Bucket: "bkt"},
		},
		"region query wins over the option": {
			location: "s3://bkt/p?region=us-west-2",
			opts:     source.Options{Region: "eu-west-1"},
			want:     Location{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "bkt", Prefix: "p/", Region: "us-west-2"},
		},
		"gs uses the interoperable endpoint": {
			location: "gs://my-bucket/state",
			want:     Location{Endpoint: "storage.googleapis.com", Secure: true, Bucket: "my-bucket", Prefix: "state/", Google: true},
		},
		"gs with an endpoint option is still Google": {
			location: "gs://my-bucket",
			opts:     source.Options{Endpoint: "http://127.0.0.1:4443"},
			want:     Location{Endpoint: "127.0.0.1:4443", Bucket: "my-bucket", Google: true},
		},
		"s3 URL at the GCS endpoint is Google": {
			location: "s3+https://storage.googleapis.com/my-bucket",
			want:     Location{Endpoint: "storage.googleapis.com", Secure: true, Bucket: "my-bucket", Google: true},
		},
		"s3+http names its endpoint": {
			location: "s3+http://127.0.0.1:9000/bucket/a/b",
			opts:     source.Options{Endpoint: "https://ignored.example.com"},
			want:     Location{Endpoint: "127.0.0.1:9000", Bucket: "bucket", Prefix: "a/b/"},
		},
		"s3+https whole bucket": {
			location: "s3+https://minio.example.com/bucket",
			want:     Location{Endpoint: "minio.example.com", Secure: true, Bucket: "bucket"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseURL(tc.location, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(Location{})); diff != "" {
				t.Errorf("ParseURL(%q) (-want +got):\n%s", tc.location, diff)
			}
		})
	}
}

func TestParseURLRefuses(t *testing.T) {
	cases := map[string]struct {
		location string
		opts     source.Options
		want     string
	}{
		"credentials in the URL":   {location: "s3+https://AKIA:topsecret@host/bucket", want: "credentials in the URL"},
		"unknown scheme":           {location: "ftp://host/bucket", want: "not a bucket scheme"},
		"no bucket":                {location: "s3+http://host:9000/", want: "no bucket name"},
		"invalid bucket name":      {location: "s3://bad..name", want: "bucket name"},
		"dot-dot prefix":           {location: "s3://bkt/a/../c", want: `".." segment`},
		"empty prefix segment":     {location: "s3://bkt/a//c", want: "empty path segment"},
		"unknown query":            {location: "s3://bkt/p?endpoint=x", want: `unknown query parameter "endpoint"`},
		"endpoint with a path":     {location: "s3://bkt", opts: source.Options{Endpoint: "http://host/path"}, want: "no path"},
		"endpoint with user info":  {location: "s3://bkt", opts: source.Options{Endpoint: "http://u:pw@host"}, want: "credentials"},
		"endpoint with bad scheme": {location: "s3://bkt", opts: source.Options{Endpoint: "ftp://host"}, want: "http or https"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseURL(tc.location, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseURL(%q) = %v, want an error containing %q", tc.location, err, tc.want)
			}
			for _, secret := range []string{"topsecret", ":pw@"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q leaks a credential", err)
				}
			}
		})
	}
}

func TestCheckKey(t *testing.T) {
	cases := map[string]bool{ // key → accepted
		"releases/web.yaml":        true,
		"charts/hello-0.1.0.tgz":   true,
		"values/prod/common.yaml":  true,
		"weird but fine/é ü.yaml":  true,
		"..hidden/a":               true,
		"":                         false,
		"/etc/passwd":              false,
		"../evil":                  false,
		"releases/../../evil":      false,
		"releases/./a.yaml":        false,
		"releases//a.yaml":         false,
		"releases/":                false,
		`releases\..\evil`:         false,
		"releases/a\x00.yaml":      false,
		"releases/line\nbreak.yml": false,
	}
	for key, ok := range cases {
		err := CheckKey(key)
		if ok && err != nil {
			t.Errorf("CheckKey(%q) = %v, want accepted", key, err)
		}
		if !ok && (err == nil || !errors.Is(err, ErrUnsafeKey)) {
			t.Errorf("CheckKey(%q) = %v, want ErrUnsafeKey", key, err)
		}
	}
}

func TestCheckTree(t *testing.T) {
	ok := []Object{{Rel: "a.yaml"}, {Rel: "ab/c"}, {Rel: "b/c"}}
	if err := checkTree(ok); err != nil {
		t.Errorf("checkTree(%v) = %v", ok, err)
	}
	bad := []Object{{Rel: "a"}, {Rel: "a/b/c"}}
	if err := checkTree(bad); err == nil || !errors.Is(err, ErrUnsafeKey) || !strings.Contains(err.Error(), `"a/b/c"`) {
		t.Errorf("checkTree(%v) = %v, want ErrUnsafeKey naming a/b/c", bad, err)
	}
}

func TestDigest(t *testing.T) {
	base := []Object{{Rel: "a", ETag: "1"}, {Rel: "b", ETag: "2"}}
	cases := map[string][]Object{
		"changed etag":    {{Rel: "a", ETag: "1"}, {Rel: "b", ETag: "3"}},
		"renamed":         {{Rel: "a", ETag: "1"}, {Rel: "c", ETag: "2"}},
		"removed":         {{Rel: "a", ETag: "1"}},
		"boundary moved":  {{Rel: "a", ETag: "1"}, {Rel: "b", ETag: "2"}, {Rel: "", ETag: ""}},
		"etag into name:": {{Rel: "a 1:1", ETag: ""}, {Rel: "b", ETag: "2"}},
	}
	d := Digest(base)
	if !strings.HasPrefix(d, "sha256:") || d != Digest(append([]Object(nil), base...)) {
		t.Fatalf("Digest = %q, want a stable sha256: digest", d)
	}
	for name, objs := range cases {
		if Digest(objs) == d {
			t.Errorf("%s: same digest as the original", name)
		}
	}
}

func TestNewRequiresACacheFolder(t *testing.T) {
	if _, err := New("s3://bkt", source.Options{}); err == nil {
		t.Error("New without CacheDir succeeded")
	}
}

func TestCacheNameIsPerLocation(t *testing.T) {
	a := CacheName(Location{Endpoint: "h:1", Bucket: "b", Prefix: "p/"})
	for _, other := range []Location{
		{Endpoint: "h:2", Bucket: "b", Prefix: "p/"},
		{Endpoint: "h:1", Bucket: "c", Prefix: "p/"},
		{Endpoint: "h:1", Bucket: "b", Prefix: "q/"},
	} {
		if CacheName(other) == a {
			t.Errorf("CacheName(%+v) = CacheName of another location: %s", other, a)
		}
	}
	if strings.ContainsAny(a, "/\\") {
		t.Errorf("CacheName = %q, not a single folder name", a)
	}
}
