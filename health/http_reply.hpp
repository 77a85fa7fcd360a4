#pragma once
// Reading the status line of a health check's HTTP reply. Pure: no I/O, testable alone.

#include <string_view>

namespace sluice::health {

enum class StatusLine {
    incomplete,  // no full line yet: read more
    ok,          // "HTTP/1.x NNN ..." found; the code is in `status`
    malformed,   // not an HTTP/1.x status line
};

// Parses the first line of `bytes` (what was read so far).
StatusLine parse_status_line(std::string_view bytes, int& status);

}  // namespace sluice::health
