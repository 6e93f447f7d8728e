#ifndef APIKEYD_CXXHASH_SHIM_H
#define APIKEYD_CXXHASH_SHIM_H
#include <xxhash.h>
#endif
