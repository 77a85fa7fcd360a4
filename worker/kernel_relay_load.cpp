// Loading the kernel relay: the program built into the binary, its two maps, the attach, and
// a check on a loopback pair that bytes really go through the kernel. Done once, by the
// master, before it forks and before any child drops privileges.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "common/log.hpp"
#include "common/unique_fd.hpp"
#include "worker/kernel_relay.hpp"
#include "worker/kernel_relay_maps.hpp"

namespace sluice::worker {

// The compiled bpf/relay.bpf.c, embedded by CMake (relay_bpf_object.cpp in the build tree).
extern const unsigned char kRelayBpfObject[];
extern const size_t kRelayBpfObjectSize;

namespace {

// libbpf's own messages (why a load failed, in detail) go to the debug log.
int log_libbpf(enum libbpf_print_level level, const char* format, va_list args) {
    if (level == LIBBPF_DEBUG || !log::enabled(log::Level::debug)) return 0;
    char line[512];
    std::vsnprintf(line, sizeof line, format, args);
    const size_t length = std::strlen(line);
    if (length > 0 && line[length - 1] == '\n') line[length - 1] = '\0';
    LOG_DEBUG("%s", line);  // libbpf starts its lines with "libbpf: "
    return 0;
}

std::string errno_text(std::string_view what, int err) {
    return std::string(what) + ": " + std::strerror(err);
}

// A TCP connection over loopback: the connecting end and the accepted one.
struct LoopbackPair {
    UniqueFd near;
    UniqueFd far;
};

// Connects to `listener` (bound to 127.0.0.1, listening) and accepts; false with errno set.
bool connect_pair(int listener, LoopbackPair& pair) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    if (::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) return false;
    pair.near = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!pair.near) return false;
    if (::connect(pair.near.get(), reinterpret_cast<sockaddr*>(&address), length) != 0)
        return false;
    pair.far = UniqueFd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    return static_cast<bool>(pair.far);
}

// Relays between two accepted sockets through the maps, as a connection would, and checks
// that a few bytes sent into one pair come out of the other within a second.
std::string check_on_loopback(const KernelRelay& relay) {
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!listener ||
        ::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener.get(), 2) != 0)
        return errno_text("cannot check it on loopback", errno);
    LoopbackPair client;
    LoopbackPair target;
    if (!connect_pair(listener.get(), client) || !connect_pair(listener.get(), target))
        return errno_text("cannot check it on loopback", errno);
    // The balancer's two sockets are client.far and target.near; the test speaks through
    // client.near and listens on target.far.
    KernelRelayMaps maps{relay.peers_fd(), relay.relayed_fd()};
    if (const int err = maps.insert(client.far.get(), target.near.get()); err != 0)
        return errno_text("cannot add sockets to its map", err);
    static constexpr char kProbe[] = "sluice";
    if (::send(client.near.get(), kProbe, sizeof kProbe, MSG_NOSIGNAL) != sizeof kProbe)
        return errno_text("cannot check it on loopback", errno);
    pollfd ready{target.far.get(), POLLIN, 0};
    char got[sizeof kProbe] = {};
    if (::poll(&ready, 1, 1000) != 1 ||
        ::recv(target.far.get(), got, sizeof got, MSG_WAITALL) != sizeof got ||
        std::memcmp(got, kProbe, sizeof got) != 0)
        return "bytes sent through its map did not arrive";
    return {};  // closing the sockets takes them out of the maps
}

}  // namespace

std::unique_ptr<KernelRelay> KernelRelay::load(std::string& why) {
    libbpf_set_print(log_libbpf);
    std::unique_ptr<KernelRelay> relay(new KernelRelay);
    relay->object_ = bpf_object__open_mem(kRelayBpfObject, kRelayBpfObjectSize, nullptr);
    if (relay->object_ == nullptr) {
        why = errno_text("cannot open the BPF program", errno);
        return nullptr;
    }
    if (const int err = bpf_object__load(relay->object_); err != 0) {
        why = errno_text("cannot load the BPF program", -err);
        return nullptr;
    }
    bpf_map* peers = bpf_object__find_map_by_name(relay->object_, "sluice_peers");
    bpf_map* relayed = bpf_object__find_map_by_name(relay->object_, "sluice_relayed");
    bpf_program* program = bpf_object__find_program_by_name(relay->object_, "sluice_redirect");
    if (peers == nullptr || relayed == nullptr || program == nullptr) {
        why = "the BPF program lacks its maps or its function";
        return nullptr;
    }
    relay->peers_fd_ = bpf_map__fd(peers);
    relay->relayed_fd_ = bpf_map__fd(relayed);
    if (bpf_prog_attach(bpf_program__fd(program), relay->relayed_fd_, BPF_SK_SKB_VERDICT, 0) != 0) {
        why = errno_text("cannot attach the BPF program to its map", errno);
        return nullptr;
    }
    why = check_on_loopback(*relay);
    if (!why.empty()) return nullptr;
    return relay;
}

KernelRelay::~KernelRelay() { bpf_object__close(object_); }

}  // namespace sluice::worker
