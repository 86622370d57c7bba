package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// A build is one set of packages built once per test binary.
type build struct {
	once sync.Once
	dir  string
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// buildDirPrefix names build directories; the pid after it lets a later
// run remove what a killed run left behind.
const buildDirPrefix = "rampart-testbin-"

// BuildBinaries builds pkgs (import paths or ./relative to moduleRoot) as
// the Dockerfile does, static and trimmed (CGO_ENABLED=0, -trimpath), into
// one directory and returns it. Each set of packages is built once per test
// binary; later calls, also from parallel tests, get the same directory.
// Call RemoveBuilds from TestMain to delete it when the run ends.
func BuildBinaries(t testing.TB, moduleRoot string, pkgs ...string) string {
	t.Helper()
	dir, err := Build(moduleRoot, pkgs...)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Build is BuildBinaries for TestMain, where there is no testing.TB.
func Build(moduleRoot string, pkgs ...string) (string, error) {
	if len(pkgs) == 0 {
		return "", errors.New("testutil: Build needs at least one package")
	}
	root, err := filepath.Abs(moduleRoot)
	if err != nil {
		return "", err
	}
	sorted := slices.Sorted(slices.Values(pkgs))
	key := root + "\x00" + strings.Join(sorted, "\x00")
	buildsMu.Lock()
	b, ok := builds[key]
	if !ok {
		b = &build{}
		builds[key] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() { b.dir, b.err = goBuild(root, sorted) })
	return b.dir, b.err
}

func goBuild(root string, pkgs []string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is not on PATH: %w", err)
	}
	removeStaleBuilds()
	dir, err := os.MkdirTemp("", buildDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", err
	}
	args := append([]string{"build", "-trimpath", "-o", dir + string(os.PathSeparator)}, pkgs...)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out.String())
	}
	return dir, nil
}

// RemoveBuilds deletes every directory that BuildBinaries and Build made in
// this test binary. Call it from TestMain after m.Run.
func RemoveBuilds() {
	buildsMu.Lock()
	defer buildsMu.Unlock()
	for key, b := range builds {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
		delete(builds, key)
	}
}

// removeStaleBuilds deletes build directories of test binaries that are no
// longer running (killed by a timeout before RemoveBuilds ran), so they do
// not pile up in the temporary directory.
func removeStaleBuilds() {
	tmp := os.TempDir()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), buildDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(tmp, e.Name()))
		}
	}
}

// ModuleRoot returns the directory of the go.mod that encloses the working
// directory (a test runs in its package's directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}
