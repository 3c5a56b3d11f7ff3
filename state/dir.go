package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	yaml "go.yaml.in/yaml/v3"
)

var (
	// ErrNotFound is wrapped by errors for a release that is not declared:
	// `release "x" not found`.
	ErrNotFound = errors.New("not found")
	// ErrExists is wrapped by Create's error when the name is taken:
	// `release "x" already exists`.
	ErrExists = errors.New("already exists")
)

const (
	// MarkerFile marks a folder as a state directory (charter init writes it).
	MarkerFile  = "charter.yaml"
	releasesDir = "releases"
	chartsDir   = "charts"
	lockName    = ".charter.lock"
	releaseExt  = ".yaml"
)

// Dir is a state directory. Its methods may be called from several
// goroutines, and several processes may use the same directory: every write
// holds an exclusive lock on STATE/.charter.lock and is atomic.
type Dir struct {
	root     string // absolute
	realRoot string // root with symlinks resolved, for containment checks
	// wrapWrite, when set, wraps the writer of every temporary file; tests
	// use it to make a write fail half way.
	wrapWrite func(io.Writer) io.Writer
}

// Open returns the state directory at root, which must exist. If root holds
// a charter.yaml marker, it must say apiVersion charter.sh/v1, kind State.
// Open does not create anything.
func Open(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open state directory %s: it does not exist", root)
	}
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open state directory %s: it is not a directory", root)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", root, err)
	}
	d := &Dir{root: abs, realRoot: real}
	if err := d.checkMarker(); err != nil {
		return nil, fmt.Errorf("open state directory %s: %w", root, err)
	}
	return d, nil
}

func (d *Dir) checkMarker() error {
	path := filepath.Join(d.root, MarkerFile)
	data, err := readLimited(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	docs, err := decodeDocs(path, data)
	if err != nil {
		return err
	}
	if len(docs) != 1 || docs[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s: want one mapping with apiVersion: %s and kind: %s", path, APIVersion, KindState)
	}
	if err := checkDuplicates(docs[0]); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if v := fieldValue(docs[0], "apiVersion"); v == nil || v.Value != APIVersion {
		return fmt.Errorf("%s: want apiVersion: %s", path, APIVersion)
	}
	if v := fieldValue(docs[0], "kind"); v == nil || v.Value != KindState {
		return fmt.Errorf("%s: want kind: %s", path, KindState)
	}
	return nil
}

const markerContent = `# This folder is a charter state directory: the releases declared here are
# what charter installs. releases/NAME.yaml declares one release each;
# charts/ holds the charts bundled by 'charter deploy ./chart'.
apiVersion: charter.sh/v1
kind: State
`

// Init creates a state directory at root (with parents), holding a
// charter.yaml marker and empty releases/ and charts/ folders, and opens it.
// It is idempotent: what exists already is left as it is.
func Init(root string) (*Dir, error) {
	for _, p := range []string{root, filepath.Join(root, releasesDir), filepath.Join(root, chartsDir)} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("init state directory %s: %w", root, err)
		}
	}
	marker := filepath.Join(root, MarkerFile)
	if _, err := os.Lstat(marker); errors.Is(err, fs.ErrNotExist) {
		err := writeFile(context.Background(), marker, []byte(markerContent), 0o644, true, nil)
		if err != nil && !errors.Is(err, errFileExists) {
			return nil, fmt.Errorf("init state directory %s: %w", root, err)
		}
	}
	return Open(root)
}

// Root returns the absolute path of the state directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) releaseRef(name string) string { return releasesDir + "/" + name + releaseExt }

// ignoredName reports whether a file name is one the store never reads:
// its own temporary files and lock, and editors' backup, swap and lock files.
func ignoredName(name string) bool {
	switch {
	case strings.HasPrefix(name, tmpPrefix), name == lockName,
		strings.HasSuffix(name, "~"),
		strings.HasPrefix(name, ".#"),
		strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"),
		strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".swo") || strings.HasSuffix(name, ".swx")):
		return true
	}
	return false
}

// Scan reads every declaration in releases/ and returns the ones that are
// valid, sorted by name, and one error per file that is not (naming the
// file). Hidden files, temporary and editor files and sub-folders are
// skipped; a file ending in .yml is reported, since it would otherwise be
// silently ignored. A state directory without releases/ holds no releases.
//
// A declaration that cannot be read is reported as a *ReleaseError naming
// the release; other errors (the folder cannot be listed) name no release.
func (d *Dir) Scan(ctx context.Context) (rels []*Release, errs []error) {
	dir := filepath.Join(d.root, releasesDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("list releases: %w", err)}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return rels, append(errs, fmt.Errorf("list releases: %w", err))
		}
		name := e.Name()
		if ignoredName(name) || strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		if strings.HasSuffix(name, ".yml") {
			errs = append(errs, &ReleaseError{Release: strings.TrimSuffix(name, ".yml"),
				Err: fmt.Errorf("%s: release files must end in %s", filepath.Join(dir, name), releaseExt)})
			continue
		}
		if !strings.HasSuffix(name, releaseExt) {
			continue
		}
		rel, _, _, err := d.load(strings.TrimSuffix(name, releaseExt))
		if err != nil {
			errs = append(errs, &ReleaseError{Release: strings.TrimSuffix(name, releaseExt), Err: err})
			continue
		}
		rels = append(rels, rel)
	}
	sort.Slice(rels, func(i, j int) bool { return rels[i].Name < rels[j].Name })
	return rels, errs
}

// ReleaseError is a declaration that exists but cannot be read. Release is
// the name its file declares: the release is neither reconciled nor
// uninstalled while the file is broken.
type ReleaseError struct {
	Release string
	Err     error
}

func (e *ReleaseError) Error() string { return e.Err.Error() }
func (e *ReleaseError) Unwrap() error { return e.Err }

// List returns every declared release, sorted by name, with defaults filled
// in. If any declaration is broken it returns an error naming the file (and
// how many more are broken) and no releases; use Scan to get the good ones.
func (d *Dir) List(ctx context.Context) ([]*Release, error) {
	rels, errs := d.Scan(ctx)
	switch len(errs) {
	case 0:
		return rels, nil
	case 1:
		return nil, errs[0]
	}
	return nil, fmt.Errorf("%w (and %d more broken release files)", errs[0], len(errs)-1)
}

// Get returns the release declared as name, with defaults filled in, or an
// error wrapping ErrNotFound.
func (d *Dir) Get(ctx context.Context, name string) (*Release, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("get release: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get release %q: %w", name, err)
	}
	rel, _, _, err := d.load(name)
	return rel, err
}

// load reads releases/NAME.yaml strictly: it must parse, name the release
// it is the file of (or leave the name out) and pass Validate. It returns
// the release with defaults applied, the file's bytes and its mode.
func (d *Dir) load(name string) (*Release, []byte, fs.FileMode, error) {
	ref := d.releaseRef(name)
	path, err := d.ResolvePath(ref)
	if err != nil {
		return nil, nil, 0, err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, 0, fmt.Errorf("release %q %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read release %q: %w", name, err)
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, nil, 0, err
	}
	rel, err := Parse(path, data)
	if err != nil {
		return nil, nil, 0, err
	}
	switch {
	case rel.Name == "":
		rel.Name = name
	case rel.Name != name:
		return nil, nil, 0, fmt.Errorf("%s: name %q does not match the file name: want %q (or rename the file to %s%s)", path, rel.Name, name, rel.Name, releaseExt)
	}
	if err := ValidateName(name); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	rel.applyDefaults()
	if err := rel.validateBody(); err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return rel, data, fi.Mode().Perm(), nil
}

// prepare validates a release about to be written and returns a copy with
// defaults applied and values normalized.
func (d *Dir) prepare(r *Release) (*Release, error) {
	rel := r.DeepCopy()
	rel.applyDefaults()
	if err := rel.Validate(); err != nil {
		return nil, err
	}
	vals, err := normalizeValues(rel.Values)
	if err != nil {
		return nil, fmt.Errorf("release %q: values: %w", rel.Name, err)
	}
	rel.Values = vals
	if len(rel.ValuesFiles) == 0 {
		rel.ValuesFiles = nil
	}
	for _, f := range rel.ValuesFiles {
		if _, err := d.ResolvePath(f); err != nil {
			return nil, fmt.Errorf("release %q: valuesFiles: %w", rel.Name, err)
		}
	}
	if !strings.Contains(rel.Chart, "://") {
		if _, err := d.ResolveChart(rel.Chart); err != nil {
			return nil, fmt.Errorf("release %q: chart: %w", rel.Name, err)
		}
	}
	return rel, nil
}

// Create writes a new declaration for r (with apiVersion, kind and
// namespace filled in, in charter's field order). It is exclusive: if the
// name is taken — even by a file written concurrently by another process —
// it returns an error wrapping ErrExists and changes nothing. The file
// appears complete or not at all. r is not modified.
func (d *Dir) Create(ctx context.Context, r *Release) error {
	if r == nil {
		return errors.New("create release: no release given")
	}
	rel, err := d.prepare(r)
	if err != nil {
		return fmt.Errorf("create %w", err)
	}
	data, err := Marshal(rel)
	if err != nil {
		return fmt.Errorf("create release %q: %w", rel.Name, err)
	}
	unlock, err := d.lock(ctx)
	if err != nil {
		return fmt.Errorf("create release %q: %w", rel.Name, err)
	}
	defer unlock()
	if err := d.mkdir(releasesDir); err != nil {
		return fmt.Errorf("create release %q: %w", rel.Name, err)
	}
	path, err := d.ResolvePath(d.releaseRef(rel.Name))
	if err != nil {
		return fmt.Errorf("create release %q: %w", rel.Name, err)
	}
	err = writeFile(ctx, path, data, 0o644, true, d.wrapWrite)
	if errors.Is(err, errFileExists) {
		return fmt.Errorf("release %q %w", rel.Name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create release %q: %w", rel.Name, err)
	}
	return nil
}

// Update changes the declaration of release name: under the state lock it
// reads the file, passes a copy of the release to fn, validates the result
// and writes back only what fn changed, so that a hand-written file keeps
// its comments, key order, blank lines and formatting everywhere else (new
// values keys are added at the end of their mapping). fn must not rename the
// release. When fn changes nothing, or returns an error, nothing is written.
// The write is atomic. Update returns the release as now declared, or an
// error wrapping ErrNotFound when there is no such release.
func (d *Dir) Update(ctx context.Context, name string, fn func(*Release) error) (*Release, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("update release: %w", err)
	}
	unlock, err := d.lock(ctx)
	if err != nil {
		return nil, fmt.Errorf("update release %q: %w", name, err)
	}
	defer unlock()
	old, data, perm, err := d.load(name)
	if err != nil {
		return nil, err
	}
	next := old.DeepCopy()
	if err := fn(next); err != nil {
		return nil, fmt.Errorf("update release %q: %w", name, err)
	}
	if next.Name != name {
		return nil, fmt.Errorf("update release %q: renaming a release (to %q) is not supported", name, next.Name)
	}
	want, err := d.prepare(next)
	if err != nil {
		return nil, fmt.Errorf("update %w", err)
	}
	if reflect.DeepEqual(old, want) {
		return want, nil
	}
	path, err := d.ResolvePath(d.releaseRef(name))
	if err != nil {
		return nil, fmt.Errorf("update release %q: %w", name, err)
	}
	out, err := editDeclaration(path, data, old, want)
	if err != nil {
		return nil, fmt.Errorf("update release %q: %w", name, err)
	}
	if err := writeFile(ctx, path, out, perm, false, d.wrapWrite); err != nil {
		return nil, fmt.Errorf("update release %q: %w", name, err)
	}
	return want, nil
}

// Delete removes the declaration of release name, or returns an error
// wrapping ErrNotFound. Bundled charts and values files are left in place:
// other releases may use them.
func (d *Dir) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("delete release: %w", err)
	}
	unlock, err := d.lock(ctx)
	if err != nil {
		return fmt.Errorf("delete release %q: %w", name, err)
	}
	defer unlock()
	path, err := d.ResolvePath(d.releaseRef(name))
	if err != nil {
		return fmt.Errorf("delete release %q: %w", name, err)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("release %q %w", name, ErrNotFound)
		}
		return fmt.Errorf("delete release %q: %w", name, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("delete release %q: %w", name, err)
	}
	return nil
}

var (
	chartNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	chartVersionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_-]*$`)
)

// PutChart stores a packaged chart (a .tgz archive) as
// charts/NAME-VERSION.tgz, replacing an older file of that name atomically,
// and returns that STATE-relative reference for a declaration's chart field.
// chartName must be a plain file name part and version a semantic version.
func (d *Dir) PutChart(ctx context.Context, chartName, version string, archive []byte) (ref string, err error) {
	if !chartNameRE.MatchString(chartName) || strings.Contains(chartName, "..") {
		return "", fmt.Errorf("store chart: chart name %q is invalid: want letters, digits, '.', '_' and '-'", chartName)
	}
	if _, err := semver.NewVersion(version); err != nil || !chartVersionRE.MatchString(version) {
		return "", fmt.Errorf("store chart %s: version %q is not a semantic version", chartName, version)
	}
	if len(archive) < 2 || archive[0] != 0x1f || archive[1] != 0x8b {
		return "", fmt.Errorf("store chart %s-%s: archive is not a gzip file (.tgz)", chartName, version)
	}
	ref = chartsDir + "/" + chartName + "-" + version + ".tgz"
	unlock, err := d.lock(ctx)
	if err != nil {
		return "", fmt.Errorf("store chart %s: %w", ref, err)
	}
	defer unlock()
	if err := d.mkdir(chartsDir); err != nil {
		return "", fmt.Errorf("store chart %s: %w", ref, err)
	}
	path, err := d.ResolvePath(ref)
	if err != nil {
		return "", fmt.Errorf("store chart: %w", err)
	}
	if err := writeFile(ctx, path, archive, 0o644, false, d.wrapWrite); err != nil {
		return "", fmt.Errorf("store chart %s: %w", ref, err)
	}
	return ref, nil
}

// mkdir creates the STATE-relative folder ref if needed, refusing one that
// resolves outside the state directory.
func (d *Dir) mkdir(ref string) error {
	path, err := d.ResolvePath(ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	_, err = d.ResolvePath(ref) // re-check: the folder now exists
	return err
}

// ResolvePath turns a STATE-relative, slash-separated reference (as used in
// declarations) into an absolute path. It refuses empty, absolute and
// "../" references, and references whose existing part resolves, through
// symbolic links, outside the state directory (or through a broken link).
// The path need not exist.
func (d *Dir) ResolvePath(ref string) (string, error) {
	if err := checkLocalRef("path", ref); err != nil {
		return "", err
	}
	path := filepath.Join(d.root, filepath.FromSlash(ref))
	for probe := path; ; probe = filepath.Dir(probe) {
		real, err := filepath.EvalSymlinks(probe)
		if err == nil {
			if !within(d.realRoot, real) {
				return "", fmt.Errorf("path %q resolves to %s, outside the state directory %s", ref, real, d.root)
			}
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("resolve path %q: %w", ref, err)
		}
		if fi, lerr := os.Lstat(probe); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("path %q goes through the broken symbolic link %s", ref, probe)
		}
		if probe == d.root || probe == filepath.Dir(probe) {
			return "", fmt.Errorf("resolve path %q: state directory %s is gone", ref, d.root)
		}
	}
}

// ResolveChart turns a chart reference of a declaration into an absolute
// path. A chart may live inside the state directory (a bundled archive, a
// chart folder) or beside it: anywhere inside the state directory's parent
// folder, as in a repository holding state/ and charts/ side by side
// ("../charts/web"). Absolute references, references climbing higher, and
// references that resolve through symbolic links outside that scope are
// refused. Only reads go through chart references; the store never writes
// outside STATE.
func (d *Dir) ResolveChart(ref string) (string, error) {
	if err := checkChartRef(ref); err != nil {
		return "", err
	}
	scope, realScope := filepath.Dir(d.root), filepath.Dir(d.realRoot)
	path := filepath.Join(d.root, filepath.FromSlash(ref))
	if !within(scope, path) {
		return "", fmt.Errorf("chart %q points outside %s, the folder holding the state directory", ref, scope)
	}
	for probe := path; ; probe = filepath.Dir(probe) {
		real, err := filepath.EvalSymlinks(probe)
		if err == nil {
			if !within(realScope, real) {
				return "", fmt.Errorf("chart %q resolves to %s, outside %s", ref, real, scope)
			}
			return path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("resolve chart %q: %w", ref, err)
		}
		if probe == scope || probe == filepath.Dir(probe) {
			return path, nil
		}
	}
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && (rel == "." || filepath.IsLocal(rel))
}

func (d *Dir) lock(ctx context.Context) (func(), error) {
	return LockFile(ctx, filepath.Join(d.root, lockName))
}
