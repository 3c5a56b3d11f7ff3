package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	chartloader "helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/ignore"
	"sigs.k8s.io/yaml"
)

// Chart is a loaded Helm chart plus where it came from.
type Chart struct {
	Chart  *chartv2.Chart // the chart and its subcharts, as Helm's loader built them
	Digest string         // "sha256:<hex>" of the .tgz bytes, or of a directory's loaded files
	Path   string         // where it was loaded from (the name given to LoadArchive for streams)
}

// Size caps applied while loading. They are variables only so that tests
// can lower them; nothing else changes them.
var (
	maxChartBytes   int64 = 100 << 20 // all decompressed files of a chart, subchart archives included
	maxEntryBytes   int64 = 20 << 20  // one file
	maxArchiveBytes int64 = 100 << 20 // the compressed .tgz itself
	maxEntries            = 20000     // files in one chart, subchart archives included
	maxNesting            = 8         // charts/x.tgz inside charts/y.tgz inside ...
)

// Load loads a chart from a directory or a .tgz file. Directories honour
// .helmignore like Helm; symbolic links inside a directory are followed only
// when they resolve to a regular file inside the chart directory. Archives are
// read in memory with the checks of LoadArchive. Nothing is written to disk.
func Load(p string) (*Chart, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	if fi.IsDir() {
		return loadDir(p)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load chart %s: not a directory or regular file", p)
	}
	if fi.Size() > maxArchiveBytes {
		return nil, fmt.Errorf("load chart %s: archive is %d bytes, larger than the %d byte limit", p, fi.Size(), maxArchiveBytes)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	defer f.Close()
	return LoadArchive(p, f)
}

// LoadArchive loads a chart from a gzipped tar stream; name is used in errors
// and as Chart.Path. Entries that are symbolic or hard links, devices, fifos,
// absolute paths or paths with a ".." element are refused with an error that
// names the entry, as are archives over the size caps (100 MiB decompressed in
// total, 20 MiB per file). Subchart archives under charts/ get the same checks.
// Nothing is written to disk.
func LoadArchive(name string, r io.Reader) (*Chart, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxArchiveBytes+1))
	if err != nil {
		return nil, fmt.Errorf("load chart %s: read: %w", name, err)
	}
	if int64(len(raw)) > maxArchiveBytes {
		return nil, fmt.Errorf("load chart %s: archive is larger than the %d byte limit", name, maxArchiveBytes)
	}
	b := &budget{bytes: maxChartBytes, entries: maxEntries}
	files, err := readArchive(raw, b, 0)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", name, err)
	}
	ch, err := loadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", name, err)
	}
	sum := sha256.Sum256(raw)
	return &Chart{Chart: ch, Digest: "sha256:" + hex.EncodeToString(sum[:]), Path: name}, nil
}

// budget counts what a chart may still use while it is loaded.
type budget struct {
	bytes   int64
	entries int
}

func (b *budget) take(entry string, n int64) error {
	if n > maxEntryBytes {
		return fmt.Errorf("entry %q is %d bytes, larger than the %d byte limit per file", entry, n, maxEntryBytes)
	}
	if n > b.bytes {
		return fmt.Errorf("entry %q: chart is larger than the %d byte limit", entry, maxChartBytes)
	}
	b.entries--
	if b.entries < 0 {
		return fmt.Errorf("entry %q: chart has more than %d files", entry, maxEntries)
	}
	b.bytes -= n
	return nil
}

var (
	utf8BOM      = []byte{0xEF, 0xBB, 0xBF}
	windowsDrive = regexp.MustCompile(`^[a-zA-Z]:`)
)

// readArchive reads a chart archive in memory. Like Helm, the first path
// element (the chart's directory) is dropped from every entry name.
func readArchive(raw []byte, b *budget, depth int) ([]*archive.BufferedFile, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not a gzipped tar archive: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var files []*archive.BufferedFile
	for {
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		switch hd.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		case tar.TypeReg: // the reader reports old-style TypeRegA entries as TypeReg
		case tar.TypeSymlink:
			return nil, fmt.Errorf("entry %q is a symbolic link (to %q); links are not allowed in chart archives", hd.Name, hd.Linkname)
		case tar.TypeLink:
			return nil, fmt.Errorf("entry %q is a hard link (to %q); links are not allowed in chart archives", hd.Name, hd.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			return nil, fmt.Errorf("entry %q is a device file; only regular files are allowed in chart archives", hd.Name)
		case tar.TypeFifo:
			return nil, fmt.Errorf("entry %q is a fifo; only regular files are allowed in chart archives", hd.Name)
		default:
			return nil, fmt.Errorf("entry %q has unsupported tar type %q; only regular files are allowed in chart archives", hd.Name, string(hd.Typeflag))
		}
		name, err := entryName(hd.Name)
		if err != nil {
			return nil, err
		}
		if err := b.take(hd.Name, hd.Size); err != nil {
			return nil, err
		}
		data, err := io.ReadAll(io.LimitReader(tr, hd.Size+1))
		if err != nil {
			return nil, fmt.Errorf("read entry %q: %w", hd.Name, err)
		}
		if int64(len(data)) != hd.Size {
			return nil, fmt.Errorf("read entry %q: size does not match its header", hd.Name)
		}
		files = append(files, &archive.BufferedFile{Name: name, ModTime: hd.ModTime, Data: bytes.TrimPrefix(data, utf8BOM)})
	}
	if len(files) == 0 {
		return nil, errors.New("no files in chart archive")
	}
	return files, checkSubchartArchives(files, b, depth)
}

// entryName checks an archive entry's name and returns it relative to the
// chart's top directory, with "/" separators.
func entryName(raw string) (string, error) {
	n := strings.ReplaceAll(raw, "\\", "/")
	if strings.HasPrefix(n, "/") || windowsDrive.MatchString(n) {
		return "", fmt.Errorf("entry %q has an absolute path", raw)
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", fmt.Errorf("entry %q refers to a parent directory", raw)
		}
	}
	top, rest, ok := strings.Cut(strings.TrimPrefix(n, "./"), "/")
	rest = path.Clean(rest)
	if !ok || top == "" || rest == "." || rest == "" {
		return "", fmt.Errorf("entry %q is not inside the chart's directory", raw)
	}
	if strings.HasPrefix(rest, "/") || windowsDrive.MatchString(rest) {
		return "", fmt.Errorf("entry %q has an absolute path", raw)
	}
	return rest, nil
}

var subchartArchive = regexp.MustCompile(`(^|/)charts/[^/]+\.tgz$`)

// checkSubchartArchives applies the archive checks to every subchart .tgz,
// charging their contents to the same budget. Helm's loader unpacks them
// later without these checks, so they must pass here first.
func checkSubchartArchives(files []*archive.BufferedFile, b *budget, depth int) error {
	for _, f := range files {
		if !subchartArchive.MatchString(f.Name) {
			continue
		}
		if depth+1 > maxNesting {
			return fmt.Errorf("%s: subchart archives nested more than %d deep", f.Name, maxNesting)
		}
		if _, err := readArchive(f.Data, b, depth+1); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return nil
}

// loadFiles builds the chart from its files with Helm's loader.
func loadFiles(files []*archive.BufferedFile) (*chartv2.Chart, error) {
	var meta *archive.BufferedFile
	for _, f := range files {
		if f.Name == "Chart.yaml" {
			meta = f
		}
	}
	if meta == nil {
		return nil, errors.New("no Chart.yaml found")
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
	}
	if err := yaml.Unmarshal(meta.Data, &head); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %s", oneLine(err.Error()))
	}
	switch head.APIVersion {
	case chartv2.APIVersionV1, chartv2.APIVersionV2, "":
	default:
		return nil, fmt.Errorf("Chart.yaml: apiVersion %q is not supported (want v1 or v2)", head.APIVersion)
	}
	ch, err := chartloader.LoadFiles(files)
	if err != nil {
		return nil, errors.New(oneLine(err.Error()))
	}
	return ch, nil
}

// loadDir reads a chart directory the way Helm's directory loader does
// (.helmignore plus Helm's default ignores), refusing irregular files and
// symbolic links that leave the chart directory.
func loadDir(dir string) (*Chart, error) {
	top, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	realTop, err := filepath.EvalSymlinks(top)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	rules := ignore.Empty()
	if _, err := os.Stat(filepath.Join(top, ignore.HelmIgnore)); err == nil {
		rules, err = ignore.ParseFile(filepath.Join(top, ignore.HelmIgnore))
		if err != nil {
			return nil, fmt.Errorf("load chart %s: %s: %w", dir, ignore.HelmIgnore, err)
		}
	}
	rules.AddDefaults()

	b := &budget{bytes: maxChartBytes, entries: maxEntries}
	var files []*archive.BufferedFile
	walk := func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(top, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		n := filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("symbolic link %s: %w", n, err)
			}
			inside, err := filepath.Rel(realTop, target)
			if err != nil || inside == ".." || strings.HasPrefix(inside, ".."+string(filepath.Separator)) {
				return fmt.Errorf("symbolic link %s points outside the chart directory (to %s)", n, target)
			}
			if fi, err = os.Stat(p); err != nil {
				return fmt.Errorf("symbolic link %s: %w", n, err)
			}
			if fi.IsDir() {
				if rules.Ignore(n, fi) {
					return nil
				}
				return fmt.Errorf("symbolic link %s points to a directory; only links to files are followed", n)
			}
		}
		if fi.IsDir() {
			if rules.Ignore(n, fi) {
				return filepath.SkipDir
			}
			return nil
		}
		if rules.Ignore(n, fi) {
			return nil
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file (mode %s)", n, fi.Mode().Type())
		}
		if err := b.take(n, fi.Size()); err != nil {
			return err
		}
		data, err := readCapped(p, fi.Size())
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: n, ModTime: fi.ModTime(), Data: bytes.TrimPrefix(data, utf8BOM)})
		return nil
	}
	if err := filepath.WalkDir(top, walk); err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	if err := checkSubchartArchives(files, b, 0); err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	ch, err := loadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	return &Chart{Chart: ch, Digest: digestFiles(files), Path: dir}, nil
}

// readCapped reads a file that was stat'ed at size bytes, refusing it if it
// has grown since.
func readCapped(p string, size int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > size {
		return nil, fmt.Errorf("%s changed size while it was read", p)
	}
	return data, nil
}

// digestFiles is a digest over names and contents of the loaded files, in
// name order, so it does not depend on modification times or walk order.
func digestFiles(files []*archive.BufferedFile) string {
	sorted := append([]*archive.BufferedFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := sha256.New()
	for _, f := range sorted {
		io.WriteString(h, f.Name)
		h.Write([]byte{0})
		io.WriteString(h, strconv.Itoa(len(f.Data)))
		h.Write([]byte{0})
		h.Write(f.Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// oneLine folds a multi-line message (Helm's template traces, schema
// reports) into one line without dropping any of it.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	out := lines[:0]
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, " ")
}
