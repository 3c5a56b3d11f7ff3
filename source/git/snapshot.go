package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrTooLarge is wrapped by Fetch's error when a file of the snapshot is
// larger than Options.MaxFileSize.
var ErrTooLarge = errors.New("file too large")

// writeSnapshot writes a commit's files into dst, an empty folder,
// straight from the object store, and returns the state root inside it and
// the digest of what it wrote.
//
// Without a sub-path the whole tree goes to dst/tree, the state root.
// With one, the folder holding the sub-path goes to dst/tree and the state
// root is dst/tree/BASE: a state directory may use charts beside it
// ("../charts/web", see state.Dir.ResolveChart), so its parent folder is
// part of the snapshot. The state root's parent never reaches outside dst.
//
// Symbolic links and submodules are skipped; files are at most maxSize
// bytes and are streamed, never held in memory whole.
func writeSnapshot(ctx context.Context, commit *object.Commit, sub, dst string, maxSize int64) (root, digestOf string, err error) {
	tree, err := commit.Tree()
	if err != nil {
		return "", "", fmt.Errorf("read tree: %w", err)
	}
	out := filepath.Join(dst, "tree")
	root = out
	if sub != "" {
		parent, base := path.Split(sub)
		parent = strings.TrimSuffix(parent, "/")
		if parent != "" {
			tree, err = tree.Tree(parent)
		}
		if err == nil {
			_, err = tree.Tree(base)
		}
		if errors.Is(err, object.ErrDirectoryNotFound) {
			return "", "", fmt.Errorf("sub-path %q: no such folder in the commit", sub)
		}
		if err != nil {
			return "", "", fmt.Errorf("sub-path %q: %w", sub, err)
		}
		root = filepath.Join(out, base)
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", "", err
	}
	w := &treeWriter{ctx: ctx, maxSize: maxSize}
	if err := w.write(tree, "", out); err != nil {
		return "", "", err
	}
	return root, digest(w.files), nil
}

type fileSum struct {
	rel string // slash-separated, relative to the snapshot root
	sum string // hex sha256 of the content
}

type treeWriter struct {
	ctx     context.Context
	maxSize int64
	files   []fileSum
}

func (w *treeWriter) write(tree *object.Tree, rel, dir string) error {
	for _, e := range tree.Entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if !safeName(e.Name) {
			return fmt.Errorf("unsafe file name %q in %s", e.Name, displayDir(rel))
		}
		erel := path.Join(rel, e.Name)
		target := filepath.Join(dir, e.Name)
		switch e.Mode {
		case filemode.Dir:
			subtree, err := tree.Tree(e.Name)
			if err != nil {
				return fmt.Errorf("read %s: %w", erel, err)
			}
			if err := os.Mkdir(target, 0o755); err != nil {
				return err
			}
			if err := w.write(subtree, erel, target); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			if err := w.writeFile(tree, e, erel, target); err != nil {
				return err
			}
		case filemode.Symlink, filemode.Submodule:
			// Never materialised: a link could point outside the
			// snapshot; submodules are not fetched.
		default:
			return fmt.Errorf("%s: unsupported file mode %s", erel, e.Mode)
		}
	}
	return nil
}

func (w *treeWriter) writeFile(tree *object.Tree, e object.TreeEntry, rel, target string) error {
	f, err := tree.TreeEntryFile(&e)
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	if f.Size > w.maxSize {
		return fmt.Errorf("%s is %d bytes, over the %d-byte limit: %w", rel, f.Size, w.maxSize, ErrTooLarge)
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	defer r.Close()
	perm := os.FileMode(0o644)
	if e.Mode == filemode.Executable {
		perm = 0o755
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	h := sha256.New()
	// One byte more than allowed tells a lying size from a true one.
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(r, w.maxSize+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if n > w.maxSize {
		return fmt.Errorf("%s is over the %d-byte limit: %w", rel, w.maxSize, ErrTooLarge)
	}
	w.files = append(w.files, fileSum{rel: rel, sum: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// safeName rejects tree entry names that could escape the snapshot or
// confuse a reader (git itself refuses them; a crafted tree may not).
func safeName(name string) bool {
	switch {
	case name == "", name == ".", name == "..",
		strings.ContainsAny(name, "/\\\x00"),
		strings.EqualFold(name, ".git"):
		return false
	}
	return true
}

func displayDir(rel string) string {
	if rel == "" {
		return "the repository root"
	}
	return rel
}

// digest is "sha256:<hex>" over the files' paths and content sums, in the
// order a depth-first walk with sorted names visits them, so it does not
// depend on git's tree order.
func digest(files []fileSum) string {
	sort.Slice(files, func(i, j int) bool { return walkLess(files[i].rel, files[j].rel) })
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "file %d:%s %s\n", len(f.rel), f.rel, f.sum)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// walkLess orders slash paths component by component ("a/z" before "a-b").
func walkLess(a, b string) bool {
	ap, bp := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(ap) && i < len(bp); i++ {
		if ap[i] != bp[i] {
			return ap[i] < bp[i]
		}
	}
	return len(ap) < len(bp)
}
