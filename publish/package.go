package publish

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"

	"github.com/charter-sh/charter/render"
)

// ArchiveModTime is the modification time of every entry of an archive
// Package writes.
var ArchiveModTime = time.Unix(0, 0).UTC()

// maxPackedBytes caps the archive chartutil.Save writes before it is
// normalised; render.Load has already capped the chart far below it.
const maxPackedBytes = 200 << 20

// Package packages the chart in chartDir into destDir/NAME-VERSION.tgz
// (destDir is created if needed) and returns the archive's path. The
// archive holds what `helm package` would put in it, normalised so that the
// same chart always gives the same bytes (see the package documentation).
// A chart whose Chart.yaml lists dependencies missing from charts/ is
// refused, as Helm refuses it. The archive is written to a temporary file
// and renamed: an existing archive is replaced whole or not at all.
func Package(ctx context.Context, chartDir, destDir string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("package %s: %w", chartDir, err)
	}
	fi, err := os.Stat(chartDir)
	if err != nil {
		return "", fmt.Errorf("package %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("package %s: not a chart directory", chartDir)
	}
	loaded, err := render.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("package %s: %w", chartDir, err)
	}
	ch := loaded.Chart
	if err := checkDependencies(ch); err != nil {
		return "", fmt.Errorf("package %s: %w", chartDir, err)
	}
	data, err := archiveBytes(ch)
	if err != nil {
		return "", fmt.Errorf("package %s: %w", chartDir, err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("package %s: %w", chartDir, err)
	}
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return "", fmt.Errorf("package %s: %w", chartDir, err)
	}
	dst := filepath.Join(destDir, ArchiveName(ch.Metadata.Name, ch.Metadata.Version))
	if err := writeFileAtomic(dst, data, 0o644); err != nil {
		return "", fmt.Errorf("package %s: %w", chartDir, err)
	}
	return dst, nil
}

// ArchiveName is the file name Helm gives a chart archive.
func ArchiveName(name, version string) string { return name + "-" + version + ".tgz" }

// checkDependencies refuses a chart whose Chart.yaml names a dependency that
// charts/ does not hold, like `helm package` without --dependency-update.
func checkDependencies(ch *chartv2.Chart) error {
	have := map[string]bool{}
	for _, d := range ch.Dependencies() {
		have[d.Name()] = true
	}
	var missing []string
	for _, d := range ch.Metadata.Dependencies {
		if d != nil && !have[d.Name] {
			missing = append(missing, d.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dependencies in Chart.yaml missing from charts/: %s (run `helm dependency build`)", strings.Join(missing, ", "))
	}
	return nil
}

// archiveBytes has Helm write the chart's archive, then rewrites it
// deterministically.
func archiveBytes(ch *chartv2.Chart) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "charter-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	saved, err := chartutil.Save(ch, tmp)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(saved)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return normalise(io.LimitReader(f, maxPackedBytes))
}

type entry struct {
	name string
	data []byte
}

// normalise reads a gzipped tar of regular files and writes it again with
// sorted entries and fixed metadata.
func normalise(r io.Reader) ([]byte, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read packed chart: %w", err)
	}
	tr := tar.NewReader(zr)
	var entries []entry
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read packed chart: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("packed chart: entry %q is not a regular file", h.Name)
		}
		if seen[h.Name] {
			return nil, fmt.Errorf("packed chart: duplicate entry %q", h.Name)
		}
		seen[h.Name] = true
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read packed chart: %w", err)
		}
		entries = append(entries, entry{name: h.Name, data: data})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	// zw.Header stays zero: no name, comment or mtime in the gzip header.
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     e.name,
			Mode:     0o644,
			Size:     int64(len(e.data)),
			ModTime:  ArchiveModTime,
			Format:   tar.FormatPAX, // always the same header layout, whatever the name length
		}
		if len(e.name) <= 100 {
			h.Format = tar.FormatUSTAR // what Helm and most tars write for short names
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
