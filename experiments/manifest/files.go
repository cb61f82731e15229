package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// Extensions are the files a directory is read for, as kubectl reads it.
var Extensions = []string{".json", ".yaml", ".yml"}

// Files expands paths as kubectl's -f does: a directory stands for its
// files with one of Extensions, in lexical order, and those of its
// subdirectories too when recursive (kubectl's -R). Standard input and
// other paths are kept as they are, for Read to open or refuse.
func Files(paths []string, recursive bool) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if p == Stdin || err != nil || !st.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && path != p && !recursive:
				return fs.SkipDir
			case !d.IsDir() && slices.Contains(Extensions, filepath.Ext(path)):
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if len(found) == 0 {
			hint := ""
			if !recursive {
				hint = " (-R reads its subdirectories too)"
			}
			return nil, errors.New(p + ": a directory with no .json, .yaml or .yml file in it" + hint)
		}
		out = append(out, found...)
	}
	return out, nil
}
