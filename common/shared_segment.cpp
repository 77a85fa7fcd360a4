#include "common/shared_segment.hpp"

#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <new>

namespace sluice {

SharedSegment::SharedSegment()
    : region_(boost::interprocess::anonymous_shared_memory(sizeof(SharedTable))),
      table_(new (region_.get_address()) SharedTable()) {}

SharedSegment::~SharedSegment() {
    // SharedTable is trivially destructible in practice (atomics only); end its lifetime
    // explicitly before the region unmaps.
    if (table_ != nullptr && region_.get_address() != nullptr) table_->~SharedTable();
}

}  // namespace sluice
