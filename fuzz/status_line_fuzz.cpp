// The health check's status-line parser on any reply: no crash or undefined behaviour, and
// the answers agree with one another however the reply is sliced by the network, since the
// probe calls it again after every read.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_require.hpp"
#include "health/http_reply.hpp"

using sluice::health::parse_status_line;
using sluice::health::StatusLine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    int status = -1;
    const StatusLine whole = parse_status_line(bytes, status);
    if (whole == StatusLine::ok) {
        FUZZ_REQUIRE(status >= 100 && status <= 999, std::to_string(status));
        FUZZ_REQUIRE(bytes.substr(0, 7) == "HTTP/1.", bytes.substr(0, 16));
        FUZZ_REQUIRE(bytes.find('\n') != std::string_view::npos, "ok without a full line");
    } else {
        FUZZ_REQUIRE(status == -1, "status written without ok");
    }

    // A reply read so far that is a prefix of a valid one must be "incomplete", not
    // "malformed"; and once the line is complete, what follows it does not matter.
    const size_t eol = bytes.find('\n');
    const size_t line_end = eol == std::string_view::npos ? bytes.size() : eol + 1;
    for (size_t n = 0; n < line_end; ++n) {
        int ignored = -1;
        const StatusLine part = parse_status_line(bytes.substr(0, n), ignored);
        if (whole == StatusLine::ok)
            FUZZ_REQUIRE(part == StatusLine::incomplete, bytes.substr(0, n));
        if (part == StatusLine::malformed)
            FUZZ_REQUIRE(whole == StatusLine::malformed, bytes.substr(0, n));
    }
    if (eol != std::string_view::npos) {
        int again = -1;
        FUZZ_REQUIRE(
            parse_status_line(bytes.substr(0, line_end), again) == whole && again == status,
            bytes.substr(0, line_end));
    }
    return 0;
}
