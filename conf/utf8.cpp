#include "conf/utf8.hpp"

namespace sluice {
namespace {

// How many continuation bytes follow `lead`, and the range the first of them must fall in
// (which is what rules out overlong forms, surrogates and code points above U+10FFFF).
// Returns false for a byte that cannot start a sequence.
bool sequence_shape(unsigned char lead, size_t& follow, unsigned char& low, unsigned char& high) {
    low = 0x80;
    high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
        follow = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        follow = 2;
        if (lead == 0xE0) low = 0xA0;   // overlong below U+0800
        if (lead == 0xED) high = 0x9F;  // U+D800-U+DFFF: surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        follow = 3;
        if (lead == 0xF0) low = 0x90;   // overlong below U+10000
        if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
        return false;  // a continuation byte, 0xC0, 0xC1 or 0xF5-0xFF
    }
    return true;
}

}  // namespace

size_t first_invalid_utf8(std::string_view text) {
    size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        if (lead < 0x80) {
            ++i;
            continue;
        }
        size_t follow = 0;
        unsigned char low = 0, high = 0;
        if (!sequence_shape(lead, follow, low, high) || text.size() - i <= follow) return i;
        for (size_t k = 1; k <= follow; ++k) {
            const auto c = static_cast<unsigned char>(text[i + k]);
            if (c < (k == 1 ? low : 0x80) || c > (k == 1 ? high : 0xBF)) return i;
        }
        i += follow + 1;
    }
    return std::string_view::npos;
}

}  // namespace sluice
