#ifndef APIKEYD_CZLIB_SHIM_H
#define APIKEYD_CZLIB_SHIM_H
#include <zlib.h>
#endif
