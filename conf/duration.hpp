#pragma once
// Durations in the config are strings with a unit: "250ms", "5s", "2m", "1h".

#include <string>
#include <string_view>

#include "conf/config.hpp"

namespace sluice {

// Parses a non-negative whole number followed by ms, s, m or h. Returns an empty string on
// success, else what is wrong.
std::string parse_duration(std::string_view text, Millis& out);

}  // namespace sluice
