#pragma once
// SLUICE_CHECK(cond): for calls that cannot fail with valid arguments (sigprocmask,
// pthread_sigmask, sigaction, setsockopt of a known option on a socket we own, ...). If one
// does fail, the process is in a state nobody reasoned about: log the expression, errno and
// place, and abort(). A child that aborts is respawned by the master; the master aborting
// ends the process tree (children get PR_SET_PDEATHSIG). Never for what a peer, the network
// or a config can cause: those are handled where they happen (docs/ARCHITECTURE.md, Errors).

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/log.hpp"

#define SLUICE_CHECK(cond)                                                                \
    do {                                                                                  \
        if (!(cond)) [[unlikely]] {                                                       \
            const int check_errno_ = errno;                                               \
            LOG_ERROR("check failed: %s at %s:%d (errno: %s)", #cond, __FILE__, __LINE__, \
                      std::strerror(check_errno_));                                       \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)

// The same for calls that return an error number instead of setting errno (pthread_*).
#define SLUICE_CHECK_RC(call)                                                      \
    do {                                                                           \
        if (const int check_rc_ = (call); check_rc_ != 0) [[unlikely]] {           \
            LOG_ERROR("check failed: %s at %s:%d (%s)", #call, __FILE__, __LINE__, \
                      std::strerror(check_rc_));                                   \
            std::abort();                                                          \
        }                                                                          \
    } while (0)
