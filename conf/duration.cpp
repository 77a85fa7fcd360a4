#include "conf/duration.hpp"

#include <charconv>
#include <cstdint>
#include <limits>

namespace sluice {

std::string parse_duration(std::string_view text, Millis& out) {
    size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0)
        return "duration \"" + std::string(text) +
               "\" must start with a whole number (e.g. \"250ms\", \"5s\")";
    uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, value);
    if (ec != std::errc() || ptr != text.data() + digits)
        return "duration \"" + std::string(text) + "\" is too large";
    const std::string_view unit = text.substr(digits);
    uint64_t scale = 0;
    if (unit == "ms")
        scale = 1;
    else if (unit == "s")
        scale = 1000;
    else if (unit == "m")
        scale = uint64_t{60} * 1000;
    else if (unit == "h")
        scale = uint64_t{3600} * 1000;
    else if (unit.empty())
        return "duration \"" + std::string(text) + "\" has no unit (write e.g. \"" +
               std::string(text) + "s\" or \"" + std::string(text) + "ms\")";
    else
        return "duration \"" + std::string(text) + "\" has an unknown unit \"" + std::string(unit) +
               "\" (use ms, s, m or h)";
    constexpr uint64_t kMax = 365ull * 24 * 3600 * 1000;  // a year is more than anyone means
    if (value > kMax / scale) return "duration \"" + std::string(text) + "\" is too large";
    out = Millis(static_cast<int64_t>(value * scale));
    return {};
}

}  // namespace sluice
