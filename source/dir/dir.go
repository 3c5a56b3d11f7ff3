package dir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/charter-sh/charter/source"
)

const (
	defaultMaxFileSize = 10 << 20
	defaultDebounce    = 500 * time.Millisecond
	defaultToolTimeout = 30 * time.Second
	// fetchAttempts bounds the reads of a folder that keeps changing.
	fetchAttempts = 6
)

// Source reads a local folder. Create it with New; it watches the folder
// until Close.
type Source struct {
	root        string // absolute, symlinks resolved
	display     string // the path as given, made absolute
	runDir      string // this Source's snapshots live here
	runLock     *os.File
	maxFileSize int64
	toolTimeout time.Duration

	mu   sync.Mutex // serialises Fetch and Close
	last *source.Artifact
	prev string // the snapshot before last, kept for readers of it
	shut bool
	memo *revMemo

	w       *watcher
	changes chan struct{}

	// afterCopy, when set, runs between copying the folder and checking
	// that it did not change; tests use it to change the folder.
	afterCopy func()
}

var (
	_ source.Source   = (*Source)(nil)
	_ source.Notifier = (*Source)(nil)
	_ source.Closer   = (*Source)(nil)
)

// New watches the folder at path (a plain path, or a dir:// or file://
// URL) and keeps its snapshots under opts.CacheDir. The folder must exist;
// the cache folder must not be inside it. New starts the watcher but reads
// nothing: call Fetch for a snapshot, and Close when done.
func New(path string, opts source.Options) (*Source, error) {
	for _, p := range []string{"dir://", "file://"} {
		path = strings.TrimPrefix(path, p)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open folder %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open folder %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open folder %s: it is not a folder", abs)
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("open folder %s: %w", abs, err)
	}
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("open folder %s: no cache folder given", abs)
	}
	sum := sha256.Sum256([]byte(root))
	base := filepath.Join(opts.CacheDir, "dir-"+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, fmt.Errorf("open folder %s: create cache: %w", abs, err)
	}
	realBase, err := filepath.EvalSymlinks(base)
	if err != nil {
		return nil, fmt.Errorf("open folder %s: create cache: %w", abs, err)
	}
	if within(root, realBase) {
		return nil, fmt.Errorf("open folder %s: the cache folder %s is inside it", abs, opts.CacheDir)
	}
	removeAbandoned(base)
	runDir, err := os.MkdirTemp(base, "run-")
	if err != nil {
		return nil, fmt.Errorf("open folder %s: create cache: %w", abs, err)
	}
	lock, err := lockRun(filepath.Join(runDir, "lock"))
	if err != nil {
		os.RemoveAll(runDir)
		return nil, fmt.Errorf("open folder %s: lock cache: %w", abs, err)
	}
	s := &Source{
		root:        root,
		display:     abs,
		runDir:      runDir,
		runLock:     lock,
		maxFileSize: opts.MaxFileSize,
		toolTimeout: opts.Timeout,
		changes:     make(chan struct{}, 1),
	}
	if s.maxFileSize <= 0 {
		s.maxFileSize = defaultMaxFileSize
	}
	if s.toolTimeout <= 0 || s.toolTimeout > defaultToolTimeout {
		s.toolTimeout = defaultToolTimeout
	}
	debounce := opts.Debounce
	if debounce <= 0 {
		debounce = defaultDebounce
	}
	s.w, err = startWatcher(root, debounce, s.changes)
	if err != nil {
		lock.Close()
		os.RemoveAll(runDir)
		return nil, fmt.Errorf("open folder %s: %w", abs, err)
	}
	return s, nil
}

// removeAbandoned removes run folders of Sources whose process exited
// without Close.
func removeAbandoned(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(base, e.Name())
		if strings.HasPrefix(e.Name(), "run-") && abandoned(filepath.Join(p, "lock")) {
			os.RemoveAll(p)
		}
	}
}

// String is the folder's absolute path.
func (s *Source) String() string { return s.display }

// Changes signals after a debounced burst of changes in the folder (see
// the package documentation). It is closed by Close.
func (s *Source) Changes() <-chan struct{} { return s.changes }

// Err returns the latest problem of the watcher, or nil: a folder it could
// not watch (for instance past the inotify watch limit) or lost events.
// Each problem also signals Changes, so a Fetch picks up what was missed,
// but later changes under that folder may go unnoticed until the next
// Fetch.
func (s *Source) Err() error { return s.w.err() }

// Fetch returns a consistent snapshot of the folder. It writes a new
// snapshot only when the content changed since the last Fetch, and retries
// (up to 6 reads, backing off) while the folder changes under it.
func (s *Source) Fetch(ctx context.Context) (*source.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return nil, fmt.Errorf("fetch %s: source is closed", s.display)
	}
	wait := 50 * time.Millisecond
	var lastErr error
	for attempt := 1; attempt <= fetchAttempts; attempt++ {
		a, err := s.fetchOnce(ctx)
		if err == nil {
			cp := *a
			return &cp, nil
		}
		if !errors.Is(err, errChanged) && !errors.Is(err, errTool) {
			return nil, fmt.Errorf("fetch %s: %w", s.display, err)
		}
		lastErr = err
		if attempt == fetchAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fetch %s: %w", s.display, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
	if errors.Is(lastErr, errTool) {
		return nil, fmt.Errorf("fetch %s: %w (%d attempts)", s.display, lastErr, fetchAttempts)
	}
	return nil, fmt.Errorf("fetch %s: it kept changing during %d reads (last: %v)", s.display, fetchAttempts, lastErr)
}

// errTool marks a failure of svn or brz; Fetch retries it, since a tool
// may fail while an update holds the working copy.
var errTool = errors.New("version-control tool failed")

// toolFailed wraps a tool's error so that Fetch retries it but reports it
// as it is.
type toolFailed struct{ err error }

func (e toolFailed) Error() string        { return e.err.Error() }
func (e toolFailed) Is(target error) bool { return target == errTool }
func (e toolFailed) Unwrap() error        { return e.err }

// fetchOnce reads the folder once; errChanged means try again.
func (s *Source) fetchOnce(ctx context.Context) (*source.Artifact, error) {
	gen := s.w.generation()
	vcsRev, err := s.revision(ctx)
	if err != nil {
		return nil, toolFailed{err}
	}
	scan := &walker{ctx: ctx, root: s.root, maxSize: s.maxFileSize}
	digest, err := scan.read()
	if err != nil {
		return nil, err
	}
	stable := func(w *walker) error {
		if err := w.check(); err != nil {
			return err
		}
		if s.w.generation() != gen {
			return fmt.Errorf("%w: the watcher saw a change", errChanged)
		}
		now, err := s.revision(ctx)
		if err != nil {
			return toolFailed{err}
		}
		if now != vcsRev {
			return fmt.Errorf("%w: revision moved from %s to %s", errChanged, vcsRev, now)
		}
		return nil
	}
	rev := vcsRev
	if rev == "" {
		rev = digest
	}
	if s.last != nil && s.last.Digest == digest {
		if err := stable(scan); err != nil {
			return nil, err
		}
		s.last.Revision = rev // same content: the snapshot serves a new revision too
		return s.last, nil
	}

	snap, err := os.MkdirTemp(s.runDir, "snap-")
	if err != nil {
		return nil, fmt.Errorf("write snapshot: %w", err)
	}
	cp := &walker{ctx: ctx, root: s.root, dst: snap, maxSize: s.maxFileSize}
	copied, err := cp.read()
	if s.afterCopy != nil {
		s.afterCopy()
	}
	if err == nil && copied != digest {
		err = fmt.Errorf("%w: content differs between two reads", errChanged)
	}
	if err == nil {
		err = stable(cp)
	}
	if err != nil {
		os.RemoveAll(snap)
		return nil, err
	}
	if s.prev != "" {
		os.RemoveAll(s.prev)
	}
	if s.last != nil {
		s.prev = s.last.Path
	}
	s.last = &source.Artifact{Revision: rev, Digest: digest, Path: snap}
	return s.last, nil
}

// Close stops the watcher, closes Changes and removes the snapshots. Fetch
// fails afterwards. Close is idempotent.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return nil
	}
	s.shut = true
	s.w.stop()
	err := os.RemoveAll(s.runDir)
	s.runLock.Close()
	if err != nil {
		return fmt.Errorf("close %s: remove snapshots: %w", s.display, err)
	}
	return nil
}

// watcher turns fsnotify events into debounced signals.
type watcher struct {
	root     string
	fs       *fsnotify.Watcher
	debounce time.Duration
	out      chan struct{}
	gen      atomic.Uint64 // counts relevant events, for Fetch's consistency check
	quit     chan struct{}
	done     chan struct{}

	mu      sync.Mutex
	lastErr error
}

func startWatcher(root string, debounce time.Duration, out chan struct{}) (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &watcher{root: root, fs: fw, debounce: debounce, out: out, quit: make(chan struct{}), done: make(chan struct{})}
	if err := w.addRecursive(root); err != nil {
		fw.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

func (w *watcher) generation() uint64 { return w.gen.Load() }

func (w *watcher) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

func (w *watcher) setErr(err error) {
	w.mu.Lock()
	w.lastErr = err
	w.mu.Unlock()
}

func (w *watcher) stop() {
	close(w.quit)
	<-w.done
}

// run is the watcher's one goroutine: it selects on quit, events, errors
// and the debounce timer, and owns the timer.
func (w *watcher) run() {
	defer close(w.done)
	defer close(w.out)
	defer w.fs.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var first time.Time // first change of the pending burst; zero when none
	arm := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		// Quiet for one period, but never later than 10 periods after the
		// first change, so a folder that never settles still signals.
		d := w.debounce
		if deadline := first.Add(10 * w.debounce); now.Add(d).After(deadline) {
			d = max(deadline.Sub(now), 0)
		}
		timer.Reset(d)
	}
	for {
		select {
		case <-w.quit:
			timer.Stop()
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if !w.relevant(ev) {
				continue
			}
			w.gen.Add(1)
			if ev.Name == w.root && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// inotify cannot follow a folder recreated at the same path.
				w.setErr(fmt.Errorf("watch %s: the folder was removed or renamed; changes to a folder recreated there are not watched", w.root))
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					if err := w.addRecursive(ev.Name); err != nil {
						w.setErr(err)
					}
				}
			}
			arm()
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// Lost events (queue overflow) or a failed watch: make the
			// consumer read the folder again.
			w.setErr(fmt.Errorf("watch %s: %w", w.root, err))
			w.gen.Add(1)
			arm()
		case <-timer.C:
			first = time.Time{}
			select {
			case w.out <- struct{}{}:
			default: // a signal is already pending
			}
		}
	}
}

// relevant reports whether an event may change a snapshot: not under an
// ignored path, and not only an attribute change.
func (w *watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	rel, err := filepath.Rel(w.root, ev.Name)
	if err != nil {
		return true
	}
	return rel == "." || !ignoredRel(rel)
}

// addRecursive watches root and every folder below it, skipping ignored
// ones. A folder removed meanwhile is not an error.
func (w *watcher) addRecursive(root string) error {
	return filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && p != w.root {
				return nil
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		if !de.IsDir() {
			return nil
		}
		if p != w.root && ignoredName(de.Name()) {
			return filepath.SkipDir
		}
		if err := w.fs.Add(p); err != nil {
			if errors.Is(err, os.ErrNotExist) && p != w.root {
				return nil
			}
			return fmt.Errorf("watch %s: %w", p, err)
		}
		return nil
	})
}
