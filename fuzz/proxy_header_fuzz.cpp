// The PROXY protocol headers (v1 text, v2 binary) built for fuzzed client and destination
// addresses, read back by a parser written here from HAProxy's spec (proxy-protocol.txt,
// sections 2.1 and 2.2): the families, addresses and ports that come out must be the ones
// that went in. Addresses of two families, or of a family other than IPv4/IPv6, give no
// header at all.

#include <arpa/inet.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_require.hpp"
#include "worker/proxy_protocol.hpp"

namespace {

using sluice::net::Endpoint;

// What a header says about one connection.
struct Connection {
    int family = AF_UNSPEC;
    unsigned char source[16] = {};
    unsigned char destination[16] = {};
    uint16_t source_port = 0;
    uint16_t destination_port = 0;

    bool operator==(const Connection&) const = default;
};

size_t address_size(int family) { return family == AF_INET ? 4 : 16; }

// The connection an endpoint pair describes, in the same form the parsers fill.
Connection expected(const Endpoint& client, const Endpoint& destination) {
    Connection c;
    c.family = client.family();
    const auto fill = [&](const Endpoint& e, unsigned char* address, uint16_t& port) {
        if (e.family() == AF_INET) {
            const auto* in = reinterpret_cast<const sockaddr_in*>(&e.storage);
            std::memcpy(address, &in->sin_addr, 4);
            port = ntohs(in->sin_port);
        } else {
            const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&e.storage);
            std::memcpy(address, &in6->sin6_addr, 16);
            port = ntohs(in6->sin6_port);
        }
    };
    fill(client, c.source, c.source_port);
    fill(destination, c.destination, c.destination_port);
    return c;
}

// A port in v1: 0 to 65535 in decimal, no leading zero (spec 2.1).
bool parse_port(std::string_view text, uint16_t& out) {
    if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return false;
    out = static_cast<uint16_t>(value);
    return true;
}

// "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n", at most 107 bytes, fields split by one space.
bool parse_v1(std::string_view header, Connection& out) {
    if (header.size() > 107 || header.size() < 2 || header.substr(header.size() - 2) != "\r\n")
        return false;
    std::string_view rest = header.substr(0, header.size() - 2);
    std::vector<std::string> fields;
    for (;;) {
        const size_t space = rest.find(' ');
        fields.emplace_back(rest.substr(0, space));
        if (space == std::string_view::npos) break;
        rest.remove_prefix(space + 1);
    }
    if (fields.size() != 6 || fields[0] != "PROXY") return false;
    if (fields[1] == "TCP4")
        out.family = AF_INET;
    else if (fields[1] == "TCP6")
        out.family = AF_INET6;
    else
        return false;
    return inet_pton(out.family, fields[2].c_str(), out.source) == 1 &&
           inet_pton(out.family, fields[3].c_str(), out.destination) == 1 &&
           parse_port(fields[4], out.source_port) && parse_port(fields[5], out.destination_port);
}

// The 12-byte signature, version 2 + PROXY, TCP over IPv4 (0x11) or IPv6 (0x21), the
// big-endian length of what follows, then the addresses and the big-endian ports. The
// builder adds no TLV, so the length must be exactly that of the addresses.
bool parse_v2(const unsigned char* header, size_t size, Connection& out) {
    static constexpr unsigned char kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    if (size < 16 || std::memcmp(header, kSignature, 12) != 0 || header[12] != 0x21) return false;
    if (header[13] == 0x11)
        out.family = AF_INET;
    else if (header[13] == 0x21)
        out.family = AF_INET6;
    else
        return false;
    const size_t length = static_cast<size_t>(header[14]) << 8 | header[15];
    const size_t a = address_size(out.family);
    if (length != 2 * a + 4 || size != 16 + length) return false;
    const unsigned char* p = header + 16;
    std::memcpy(out.source, p, a);
    std::memcpy(out.destination, p + a, a);
    out.source_port = static_cast<uint16_t>(p[2 * a] << 8 | p[2 * a + 1]);
    out.destination_port = static_cast<uint16_t>(p[2 * a + 2] << 8 | p[2 * a + 3]);
    return true;
}

// Reads the input front to back; past its end every byte is 0. The input is two endpoints,
// each a kind byte (kind % 5: 0-1 IPv4, 2-3 IPv6, 4 neither) and then, for IPv4, the port
// and the address (network order, 2 + 4 bytes); for IPv6, the port, the address, the flow
// label and the scope (2 + 16 + 4 + 4); for neither, one byte (odd: AF_UNIX, even: AF_UNSPEC).
// A fixed layout, so that fuzz/corpus/proxy_header/ holds real addresses written by hand.
class Input {
public:
    Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

    void read(void* out, size_t n) {
        auto* bytes = static_cast<uint8_t*>(out);
        for (size_t i = 0; i < n; ++i) bytes[i] = at_ < size_ ? data_[at_++] : 0;
    }
    uint8_t byte() {
        uint8_t b = 0;
        read(&b, 1);
        return b;
    }

private:
    const uint8_t* data_;
    size_t size_;
    size_t at_ = 0;
};

Endpoint make_endpoint(Input& in) {
    Endpoint e;
    const uint8_t kind = in.byte() % 5;
    if (kind <= 1) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&e.storage);
        sin->sin_family = AF_INET;
        in.read(&sin->sin_port, 2);
        in.read(&sin->sin_addr, 4);
        e.length = sizeof(sockaddr_in);
    } else if (kind <= 3) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&e.storage);
        sin6->sin6_family = AF_INET6;
        in.read(&sin6->sin6_port, 2);
        in.read(&sin6->sin6_addr, 16);
        in.read(&sin6->sin6_flowinfo, 4);
        in.read(&sin6->sin6_scope_id, 4);
        e.length = sizeof(sockaddr_in6);
    } else {
        e.storage.ss_family = (in.byte() & 1) != 0 ? AF_UNIX : AF_UNSPEC;
        e.length = sizeof(sockaddr_un);
    }
    return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Input in(data, size);
    const Endpoint client = make_endpoint(in);
    const Endpoint destination = make_endpoint(in);
    const bool usable = client.family() == destination.family() &&
                        (client.family() == AF_INET || client.family() == AF_INET6);

    // Exactly the size the worker gives the builders, on the heap so that ASan sees a byte
    // written past it.
    std::vector<char> out(sluice::worker::kMaxProxyHeader);
    const size_t v1 = sluice::worker::proxy_header_v1(client, destination, out.data());
    const std::string text(out.data(), v1);
    std::vector<char> out2(sluice::worker::kMaxProxyHeader);
    const size_t v2 = sluice::worker::proxy_header_v2(client, destination, out2.data());
    if (!usable) {
        FUZZ_REQUIRE(v1 == 0 && v2 == 0, "a header for unusable addresses");
        return 0;
    }
    const Connection want = expected(client, destination);

    FUZZ_REQUIRE(v1 > 0 && v1 < sluice::worker::kMaxProxyHeader, text);
    FUZZ_REQUIRE(text.find('\0') == std::string::npos, text);
    Connection got1;
    FUZZ_REQUIRE(parse_v1(text, got1), text);
    FUZZ_REQUIRE(got1 == want, text);

    FUZZ_REQUIRE(v2 > 0 && v2 <= sluice::worker::kMaxProxyHeader, std::to_string(v2));
    Connection got2;
    FUZZ_REQUIRE(parse_v2(reinterpret_cast<const unsigned char*>(out2.data()), v2, got2),
                 std::string_view(out2.data(), v2));
    FUZZ_REQUIRE(got2 == want, std::string_view(out2.data(), v2));
    return 0;
}
