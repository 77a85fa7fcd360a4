#pragma once
// FUZZ_REQUIRE(cond, what): a property every input must keep. When it does not, print the
// property and `what` (the value that broke it) and abort(), which libFuzzer reports as a
// crash and saves the input as the reproducer.

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace sluice::fuzz {

[[noreturn]] inline void property_broken(const char* property, const char* file, int line,
                                         std::string_view what) {
    std::fprintf(stderr, "property broken: %s at %s:%d\n  value: %.*s\n", property, file, line,
                 static_cast<int>(what.size()), what.data());
    std::abort();
}

}  // namespace sluice::fuzz

// `what` is evaluated only when `cond` fails, and lives until the report is printed.
#define FUZZ_REQUIRE(cond, what) \
    ((cond) ? void() : sluice::fuzz::property_broken(#cond, __FILE__, __LINE__, (what)))
