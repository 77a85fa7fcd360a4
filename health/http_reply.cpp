#include "health/http_reply.hpp"

namespace sluice::health {

StatusLine parse_status_line(std::string_view bytes, int& status) {
    constexpr std::string_view kPrefix = "HTTP/1.";
    // Reject early what can never become a status line, so a non-HTTP peer fails fast.
    const size_t prefix = std::min(bytes.size(), kPrefix.size());
    if (bytes.substr(0, prefix) != kPrefix.substr(0, prefix)) return StatusLine::malformed;
    // A line longer than this is malformed however it arrives: the answer must not depend on
    // whether the network delivered it in one read or in several.
    constexpr size_t kMaxLine = 1024;
    const size_t eol = bytes.find('\n');
    if (eol == std::string_view::npos)
        return bytes.size() > kMaxLine ? StatusLine::malformed : StatusLine::incomplete;
    if (eol > kMaxLine) return StatusLine::malformed;
    std::string_view line = bytes.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // "HTTP/1.1 200" with an optional " reason"
    if (line.size() < 12 || (line[7] != '0' && line[7] != '1') || line[8] != ' ')
        return StatusLine::malformed;
    int code = 0;
    for (size_t i = 9; i < 12; ++i) {
        if (line[i] < '0' || line[i] > '9') return StatusLine::malformed;
        code = code * 10 + (line[i] - '0');
    }
    if (line.size() > 12 && line[12] != ' ') return StatusLine::malformed;
    if (code < 100) return StatusLine::malformed;
    status = code;
    return StatusLine::ok;
}

}  // namespace sluice::health
