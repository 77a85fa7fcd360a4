#pragma once
// Who may use the admin listener, decided from the request alone (pure functions, no
// sockets), before any route runs. The checks, in order:
//   1. the peer: without admin_allow_remote, loopback peers only (403);
//   2. Host: without admin_allow_remote, a loopback name or literal (`localhost`,
//      `127.0.0.1`, any 127.x.y.z, `[::1]`), with or without a port (421): a page whose own
//      name was made to resolve to 127.0.0.1 (DNS rebinding) sends its own name and is
//      refused. With admin_allow_remote any Host passes: the token guards instead;
//   3. a request other than GET or HEAD must not come from another site: an Origin other
//      than "http://" + Host, or a Sec-Fetch-Site other than same-origin or none, is 403
//      (a page in a browser on the same host cannot drain a target);
//   4. with a token configured: every request but GET and HEAD, and with admin_allow_remote
//      every request, must carry "Authorization: Bearer TOKEN" (401 otherwise), compared in
//      constant time.

#include <string>
#include <string_view>

#include "admin/request.hpp"
#include "common/net.hpp"

namespace sluice::admin {

struct AdminAccess {
    bool allow_remote = false;  // admin_allow_remote
    std::string token;          // the content of admin_token_file; empty: no token
};

// Why a request is refused; status 0: it may go on to its route.
struct Refusal {
    int status = 0;          // 401, 403 or 421
    std::string why;         // one line for the reply body and the log (may quote the request)
    bool bad_token = false;  // 401 for a token that was sent but is wrong (not missing)
};

Refusal check_access(const AdminRequest& request, bool peer_is_loopback, const AdminAccess& access);

// Whether a Host header value names this machine's loopback: `localhost` (any case), an IPv4
// literal in 127.0.0.0/8 or `[::1]`, optionally followed by ":PORT" (digits).
bool is_loopback_host(std::string_view host);

// Whether `given` equals `expected`, in a time that depends only on their lengths.
bool tokens_equal(std::string_view given, std::string_view expected);

// Whether a peer address is on loopback (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
bool is_loopback(const net::Endpoint& peer);

}  // namespace sluice::admin
