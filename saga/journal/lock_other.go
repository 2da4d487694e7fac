//go:build !unix

package journal

import (
	"errors"
	"os"
)

func lockDir(string) (*os.File, error) {
	return nil, errors.New("journal: file locking is supported on unix systems only")
}
