package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/provenance"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/render"
	"github.com/charter-sh/charter/source"
)

// MaxAttempts bounds how often Release writes index.yaml when concurrent
// releases keep changing it between its read and its write.
const MaxAttempts = 5

// IndexFile is the name of a repository's index.
const IndexFile = "index.yaml"

// MaxIndexSize caps the index.yaml Release reads (the largest public
// indexes are about 30 MiB).
var MaxIndexSize int64 = 64 << 20

// maxArchiveSize caps an archive read back from a destination to compare it
// with the one being released (render.Load's own cap).
const maxArchiveSize = 100 << 20

// ErrAlreadyReleased is wrapped by Release's error when the version is
// already in the destination and Options.Force is not set.
var ErrAlreadyReleased = errors.New("already released")

// errConflict: a conditional write lost a race; read again and retry.
var errConflict = errors.New("changed concurrently")

// errExists: a file that must be new already exists.
var errExists = errors.New("already exists")

// errNotFound: the file does not exist.
var errNotFound = errors.New("not found")

// Options configure Release.
type Options struct {
	// Prov is the archive's provenance file, uploaded beside it; empty for
	// none. It must name the archive as NAME-VERSION.tgz with its digest.
	Prov string
	// Force replaces a version already released.
	Force bool
	// Bucket holds credentials (AccessKey, SecretKey), Endpoint, Region and
	// Timeout for object-storage destinations. Timeout (default 60s) also
	// bounds each HTTP request.
	Bucket source.Options
	// HTTPClient is used for http(s) destinations (default: a client with
	// http.DefaultTransport). Its CheckRedirect is kept; credentials are
	// added by a wrapping transport only for the destination's origin.
	HTTPClient *http.Client
	// Username and Password authenticate (basic auth) to an http(s)
	// destination.
	Username, Password string
}

// store is one destination: a folder of files, index.yaml among them.
type store interface {
	// readFile returns a file's content and version (an ETag; "" when the
	// backend has none), or errNotFound. Files over max bytes are an error.
	readFile(ctx context.Context, name string, max int64) (data []byte, version string, err error)
	// writeFile writes a file. version "" and !replace: the file must not
	// exist (else errExists). version "" and replace: unconditional.
	// version set: the file must still be at that version (else
	// errConflict).
	writeFile(ctx context.Context, name string, data []byte, version string, replace bool) error
	// removeFile removes a file; a missing file is not an error.
	removeFile(ctx context.Context, name string) error
}

// locker is implemented by stores that serialise releases themselves (a
// local folder); Release holds the lock from its first read to its last
// write.
type locker interface {
	lock(ctx context.Context) (unlock func(), err error)
}

// Release uploads the chart archive at archivePath to the repository dest
// and adds it to dest's index.yaml, creating the index when there is none.
// It returns the archive's URL, dest + "/NAME-VERSION.tgz", redacted.
//
// Order: the index is read (a version already in it is ErrAlreadyReleased
// unless opts.Force); the archive is written (refused if an archive of that
// name with other content exists, unless opts.Force), then the .prov (when
// opts.Prov is set), then the index, with the conditional writes and
// retries described in the package documentation. The archive is checked
// with render.Load and the .prov must carry the archive's digest before
// anything is written.
func Release(ctx context.Context, archivePath, dest string, opts Options) (string, error) {
	return release(ctx, archivePath, dest, opts, nil)
}

// release is Release with a hook run before each index write (tests use it
// to lose a race on purpose).
func release(ctx context.Context, archivePath, dest string, opts Options, beforeIndexWrite func(attempt int)) (string, error) {
	rdest := source.Redact(dest)
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("release %s to %s: %w", archivePath, rdest, err)
	}

	if fi, err := os.Stat(archivePath); err != nil {
		return fail(err)
	} else if fi.IsDir() {
		return fail(errors.New("not a chart archive; package the chart first"))
	}
	ch, err := render.Load(archivePath)
	if err != nil {
		return fail(err)
	}
	md := ch.Chart.Metadata
	if md.APIVersion == "" {
		md.APIVersion = chartv2.APIVersionV1
	}
	if err := md.Validate(); err != nil {
		return fail(fmt.Errorf("chart metadata: %w", err))
	}
	data, err := os.ReadFile(archivePath)
	if err != nil {
		return fail(err)
	}
	name := ArchiveName(md.Name, md.Version)
	digest := sha256Hex(data)
	var prov []byte
	if opts.Prov != "" {
		if prov, err = os.ReadFile(opts.Prov); err != nil {
			return fail(fmt.Errorf("provenance file: %w", err))
		}
		if err := checkProv(prov, name, digest); err != nil {
			return fail(fmt.Errorf("provenance file %s: %w", opts.Prov, err))
		}
	}

	st, err := openStore(dest, opts)
	if err != nil {
		return fail(err)
	}
	url := source.Redact(strings.TrimSuffix(dest, "/") + "/" + name)
	if l, ok := st.(locker); ok {
		unlock, err := l.lock(ctx)
		if err != nil {
			return fail(err)
		}
		defer unlock()
	}
	already := func() (string, error) {
		return "", fmt.Errorf("%s %s %w to %s; use --force", md.Name, md.Version, ErrAlreadyReleased, rdest)
	}

	idx, version, err := readIndex(ctx, st)
	if err != nil {
		return fail(err)
	}
	if idx.find(md.Name, md.Version) >= 0 && !opts.Force {
		return already()
	}

	switch err := st.writeFile(ctx, name, data, "", opts.Force); {
	case errors.Is(err, errExists):
		// Left by an interrupted release, or another release of this
		// version racing this one: only the very same archive may stay.
		old, _, rerr := st.readFile(ctx, name, maxArchiveSize)
		if rerr != nil {
			return fail(rerr)
		}
		if sha256Hex(old) != digest {
			return already()
		}
	case err != nil:
		return fail(err)
	}
	switch {
	case prov != nil:
		if err := st.writeFile(ctx, name+".prov", prov, "", true); err != nil {
			return fail(err)
		}
	case opts.Force:
		// The replaced build's signature would not verify the new one.
		if err := st.removeFile(ctx, name+".prov"); err != nil {
			return fail(err)
		}
	}

	var lastConflict error
	for attempt := 1; attempt <= MaxAttempts; attempt++ {
		if attempt > 1 {
			if idx, version, err = readIndex(ctx, st); err != nil {
				return fail(err)
			}
		}
		if i := idx.find(md.Name, md.Version); i >= 0 {
			if !opts.Force {
				if idx.Entries[md.Name][i].Digest == digest {
					return url, nil // a concurrent release of the very same archive
				}
				return already()
			}
			idx.remove(md.Name, i)
		}
		now := time.Now().UTC()
		idx.add(&chartVersion{Metadata: md, URLs: []string{name}, Created: now, Digest: digest})
		idx.Generated = now
		out, err := yaml.Marshal(idx)
		if err != nil {
			return fail(fmt.Errorf("encode %s: %w", IndexFile, err))
		}
		if beforeIndexWrite != nil {
			beforeIndexWrite(attempt)
		}
		err = st.writeFile(ctx, IndexFile, out, version, false)
		if errors.Is(err, errConflict) || errors.Is(err, errExists) {
			lastConflict = err
			select {
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(time.Duration(rand.Int64N(int64(attempt) * int64(20*time.Millisecond)))):
			}
			continue
		}
		if err != nil {
			return fail(err)
		}
		return url, nil
	}
	return fail(fmt.Errorf("gave up after %d attempts, concurrent releases kept changing %s: %w", MaxAttempts, IndexFile, lastConflict))
}

// readIndex reads and parses the destination's index; a missing one is a
// new, empty index with version "".
func readIndex(ctx context.Context, st store) (*index, string, error) {
	data, version, err := st.readFile(ctx, IndexFile, MaxIndexSize)
	if errors.Is(err, errNotFound) {
		return newIndex(), "", nil
	}
	if err != nil {
		return nil, "", err
	}
	idx, err := parseIndex(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w; fix or remove it", IndexFile, err)
	}
	return idx, version, nil
}

// checkProv checks that a provenance file is a clear-signed message naming
// the archive by its released name with its digest (so that `helm verify`
// of the downloaded archive can succeed). The signature is not checked:
// that needs the signer's keyring, which Verify takes.
func checkProv(prov []byte, name, digest string) error {
	block, _ := clearsign.Decode(prov)
	if block == nil {
		return errors.New("not a provenance file (no signed block)")
	}
	var sums provenance.SumCollection
	if err := provenance.ParseMessageBlock(block.Plaintext, nil, &sums); err != nil {
		return fmt.Errorf("not a provenance file: %w", err)
	}
	got, ok := sums.Files[name]
	switch {
	case !ok:
		return fmt.Errorf("it does not name %s (sign the archive under that name)", name)
	case got != "sha256:"+digest:
		return fmt.Errorf("it is for another build of %s (%w)", name, ErrDigestMismatch)
	}
	return nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// openStore picks the backend of dest by its scheme.
func openStore(dest string, opts Options) (store, error) {
	switch {
	case strings.HasPrefix(dest, "s3://"), strings.HasPrefix(dest, "gs://"),
		strings.HasPrefix(dest, "s3+http://"), strings.HasPrefix(dest, "s3+https://"):
		return newBucketStore(dest, opts)
	case strings.HasPrefix(dest, "https://"), strings.HasPrefix(dest, "http://"):
		return newHTTPStore(dest, opts)
	case strings.HasPrefix(dest, "file://"):
		return newDirStore(dest)
	}
	return nil, errors.New("unsupported destination (want s3://, gs://, s3+http(s)://, http(s):// or file://)")
}
