// The functions of this target are header-only (include/ledger_hints.h); SwiftPM needs one
// source file per C target.
#include "ledger_hints.h"
