#include "admin/access.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace sluice::admin {
namespace {

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool all_digits(std::string_view text) {
    return !text.empty() && text.size() <= 5 && std::all_of(text.begin(), text.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
}

bool is_safe_method(const std::string& method) { return method == "GET" || method == "HEAD"; }

// Origin and Sec-Fetch-Site: "" when the request is same-origin (or says nothing, as curl
// and scripts do), else why it is cross-site.
std::string cross_site(const AdminRequest& request) {
    if (request.sec_fetch_site && *request.sec_fetch_site != "same-origin" &&
        *request.sec_fetch_site != "none")
        return "Sec-Fetch-Site: " + *request.sec_fetch_site;
    if (request.origin &&
        (!request.host || lower(*request.origin) != "http://" + lower(*request.host)))
        return "Origin: " + *request.origin;
    return {};
}

// "Authorization: Bearer TOKEN" (the scheme in any case, RFC 9110 11.1): TOKEN, or "".
std::string_view bearer_token(const std::optional<std::string>& authorization) {
    if (!authorization) return {};
    const std::string_view value = *authorization;
    const size_t space = value.find(' ');
    if (space == value.npos || lower(value.substr(0, space)) != "bearer") return {};
    std::string_view token = value.substr(space);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    return token;
}

}  // namespace

bool is_loopback_host(std::string_view host) {
    std::string_view name = host;
    const size_t colon = host.rfind(':');
    if (colon != host.npos && host.find(']', colon) == host.npos) {  // not inside "[::1]"
        if (!all_digits(host.substr(colon + 1))) return false;
        name = host.substr(0, colon);
    }
    if (lower(name) == "localhost" || name == "[::1]") return true;
    in_addr v4{};
    const std::string text(name);
    return inet_pton(AF_INET, text.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

bool tokens_equal(std::string_view given, std::string_view expected) {
    // Every byte of `expected` is compared whatever `given` holds, so the time taken tells
    // nothing about how much of a guess was right.
    unsigned diff = given.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < expected.size(); ++i) {
        const char g = given.empty() ? '\0' : given[i % given.size()];
        diff |= static_cast<unsigned char>(g) ^ static_cast<unsigned char>(expected[i]);
    }
    return diff == 0 && !expected.empty();
}

bool is_loopback(const net::Endpoint& peer) {
    if (peer.family() == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&peer.storage);
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (peer.family() == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer.storage);
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
    }
    return false;
}

Refusal check_access(const AdminRequest& request, bool peer_is_loopback,
                     const AdminAccess& access) {
    if (!access.allow_remote && !peer_is_loopback)
        return {403, "the admin listener serves loopback clients only", false};
    if (!access.allow_remote && request.host && !is_loopback_host(*request.host))
        return {421,
                "Host \"" + *request.host +
                    "\" is not a loopback name (use localhost, 127.0.0.1 or [::1])",
                false};
    const bool safe = is_safe_method(request.method);
    if (!safe) {
        const std::string why = cross_site(request);
        if (!why.empty()) return {403, "cross-site request (" + why + ")", false};
    }
    if (!access.token.empty() && (!safe || access.allow_remote)) {
        const std::string_view token = bearer_token(request.authorization);
        if (token.empty()) return {401, "no \"Authorization: Bearer TOKEN\" header", false};
        if (!tokens_equal(token, access.token)) return {401, "the bearer token is wrong", true};
    }
    return {};
}

}  // namespace sluice::admin
