/* A PKCS#11 module that loads tpm2-pkcs11 with RTLD_DEEPBIND and hands out its function
 * list. Why: tpm2-pkcs11 1.9.0 exports an internal `mutex_create`, and so does strongSwan's
 * libstrongswan; loaded into charon, the module's own call binds to strongSwan's function
 * (another signature), and C_Initialize fails with a pointer for a return value. With
 * DEEPBIND the module resolves its own symbols first. Every PKCS#11 call still goes to
 * tpm2-pkcs11 itself: this only changes how it is loaded.
 *
 * Build: cc -shared -fPIC -O2 -o pkcs11-tpm2.so pkcs11-deepbind.c -ldl
 * (scripts/ipsec-e2e does; the module path can be overridden with -DMODULE="...").
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include <dlfcn.h>

#ifndef MODULE
#define MODULE "/usr/lib/x86_64-linux-gnu/libtpm2_pkcs11.so.1"
#endif

typedef unsigned long CK_RV;
#define CKR_GENERAL_ERROR 0x5UL

CK_RV C_GetFunctionList(void **list) {
    static CK_RV (*get)(void **);
    if (!get) {
        void *h = dlopen(MODULE, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (!h) {
            return CKR_GENERAL_ERROR;
        }
        get = (CK_RV (*)(void **))dlsym(h, "C_GetFunctionList");
        if (!get) {
            return CKR_GENERAL_ERROR;
        }
    }
    return get(list);
}
