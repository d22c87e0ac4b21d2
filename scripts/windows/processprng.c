/*
 * bcryptprimitives.dll stand-in for Wine 8.0, which lacks the DLL.
 *
 * Rust's std (1.78+) imports ProcessPrng from bcryptprimitives.dll to seed
 * HashMap keys; without it every Rust .exe fails to load under Wine 8.0.
 * This DLL exports ProcessPrng and fills the buffer from advapi32's
 * SystemFunction036 (RtlGenRandom), which Wine implements. It is copied
 * into the test prefix's system32 by scripts/test-windows.sh; it is never
 * shipped or used on real Windows.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG length: feed large requests in chunks. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
