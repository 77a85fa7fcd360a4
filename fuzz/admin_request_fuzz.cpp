// The admin listener's request-line parser on any request head: no crash or undefined
// behaviour; what it accepts is a method and a path taken from the first line as sent.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "admin/http_request.hpp"
#include "fuzz/fuzz_require.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view head(reinterpret_cast<const char*>(data), size);
    sluice::admin::RequestLine request;
    const std::string error = sluice::admin::parse_request_line(head, request);

    // Only the first line counts: cutting the head after it changes nothing.
    const std::string_view first_line = head.substr(0, head.find('\n'));
    sluice::admin::RequestLine alone;
    FUZZ_REQUIRE(sluice::admin::parse_request_line(first_line, alone) == error, error);
    if (!error.empty()) return 0;
    FUZZ_REQUIRE(alone.method == request.method && alone.path == request.path, request.path);

    // "METHOD TARGET ..." where the path is the target up to its '?'.
    FUZZ_REQUIRE(!request.method.empty(), "empty method");
    FUZZ_REQUIRE(request.method.find_first_of(" \n") == std::string::npos, request.method);
    FUZZ_REQUIRE(request.path.find_first_of(" \n?") == std::string::npos, request.path);
    FUZZ_REQUIRE(head.substr(0, request.method.size()) == request.method, request.method);
    FUZZ_REQUIRE(head.substr(request.method.size(), 1) == " ", request.method);
    FUZZ_REQUIRE(head.substr(request.method.size() + 1, request.path.size()) == request.path,
                 request.path);
    return 0;
}
