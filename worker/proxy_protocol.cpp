#include "worker/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <cstdio>
#include <cstring>

namespace sluice::worker {
namespace {

uint16_t port_of(const net::Endpoint& e) {
    return e.family() == AF_INET ? reinterpret_cast<const sockaddr_in*>(&e.storage)->sin_port
                                 : reinterpret_cast<const sockaddr_in6*>(&e.storage)->sin6_port;
}

const void* address_of(const net::Endpoint& e) {
    return e.family() == AF_INET
               ? static_cast<const void*>(
                     &reinterpret_cast<const sockaddr_in*>(&e.storage)->sin_addr)
               : static_cast<const void*>(
                     &reinterpret_cast<const sockaddr_in6*>(&e.storage)->sin6_addr);
}

bool usable(const net::Endpoint& a, const net::Endpoint& b) {
    return a.family() == b.family() && (a.family() == AF_INET || a.family() == AF_INET6);
}

}  // namespace

size_t proxy_header_v1(const net::Endpoint& client, const net::Endpoint& destination, char* out) {
    if (!usable(client, destination)) return 0;
    char source[INET6_ADDRSTRLEN], target[INET6_ADDRSTRLEN];
    inet_ntop(client.family(), address_of(client), source, sizeof source);
    inet_ntop(destination.family(), address_of(destination), target, sizeof target);
    const int n = std::snprintf(out, kMaxProxyHeader, "PROXY %s %s %s %u %u\r\n",
                                client.family() == AF_INET ? "TCP4" : "TCP6", source, target,
                                ntohs(port_of(client)), ntohs(port_of(destination)));
    return n > 0 ? static_cast<size_t>(n) : 0;
}

size_t proxy_header_v2(const net::Endpoint& client, const net::Endpoint& destination, char* out) {
    if (!usable(client, destination)) return 0;
    static constexpr unsigned char kSignature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                     0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    const bool v4 = client.family() == AF_INET;
    const size_t address_size = v4 ? 4 : 16;
    const uint16_t length = static_cast<uint16_t>(2 * address_size + 4);
    auto* p = reinterpret_cast<unsigned char*>(out);
    std::memcpy(p, kSignature, sizeof kSignature);
    p[12] = 0x21;              // version 2, command PROXY
    p[13] = v4 ? 0x11 : 0x21;  // TCP over IPv4 / IPv6
    p[14] = static_cast<unsigned char>(length >> 8);
    p[15] = static_cast<unsigned char>(length & 0xff);
    std::memcpy(p + 16, address_of(client), address_size);
    std::memcpy(p + 16 + address_size, address_of(destination), address_size);
    const uint16_t ports[2] = {port_of(client), port_of(destination)};  // network order already
    std::memcpy(p + 16 + 2 * address_size, ports, sizeof ports);
    return 16 + length;
}

}  // namespace sluice::worker
