package store_test

import (
	"errors"

	"github.com/rampartgw/rampart/detections"
)

func errorsIsStore(err error) bool { return errors.Is(err, detections.ErrStore) }
