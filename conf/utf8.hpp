#pragma once
// UTF-8 validation of a config file before the TOML parser sees it. TOML requires a valid
// UTF-8 document, and toml11 3.7 reads outside its buffer when it reports invalid UTF-8
// inside a literal ('...') string, so the loader rejects such bytes itself, first.

#include <cstddef>
#include <string_view>

namespace sluice {

// The offset of the first byte that does not belong to a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF, no cut sequence),
// or std::string_view::npos when all of `text` is valid.
size_t first_invalid_utf8(std::string_view text);

}  // namespace sluice
