#include "common/shared_segment.hpp"

#include <sys/mman.h>

#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <new>

#include "common/check.hpp"

namespace sluice {

SharedSegment::SharedSegment()
    : region_(boost::interprocess::anonymous_shared_memory(sizeof(SharedTable))),
      table_(new (region_.get_address()) SharedTable()) {}

void SharedSegment::keep_from_new_children() {
    SLUICE_CHECK(::madvise(region_.get_address(), region_.get_size(), MADV_DONTFORK) == 0);
}

void SharedSegment::share_with_new_children() {
    SLUICE_CHECK(::madvise(region_.get_address(), region_.get_size(), MADV_DOFORK) == 0);
}

SharedSegment::~SharedSegment() {
    // SharedTable is trivially destructible in practice (atomics only); end its lifetime
    // explicitly before the region unmaps.
    if (table_ != nullptr && region_.get_address() != nullptr) table_->~SharedTable();
}

LedgerSegment::LedgerSegment()
    : region_(boost::interprocess::anonymous_shared_memory(sizeof(LoadLedger))),
      ledger_(new (region_.get_address()) LoadLedger()) {}

LedgerSegment::~LedgerSegment() {
    if (ledger_ != nullptr) ledger_->~LoadLedger();
}

}  // namespace sluice
