package e2e

import (
	"os"
	"testing"

	"github.com/umlkit/umlkit/tests/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
