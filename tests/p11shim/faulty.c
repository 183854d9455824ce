/* A PKCS#11 module that forwards every call to a real one (P11SHIM_MODULE) and fails on
 * purpose: a token that misbehaves the way tpm2-pkcs11 did, for tests only.
 *
 *   P11SHIM_MODULE  path of the real module (SoftHSM)
 *   P11SHIM_FAIL    "C_GenerateKeyPair=0x5x1": that function returns 0x5 (CKR_GENERAL_ERROR)
 *                   on its first 1 calls in this process, then forwards again
 *   P11SHIM_LOG     file to which each call of a watched function appends its name
 *   P11SHIM_LIE     comma list: "local" reads CKA_LOCAL back as false (NSS softokn does),
 *                   "wrap" makes C_WrapKey "succeed" with 40 bytes of 0xAB instead of asking
 *                   the real module (a token that wraps out non-extractable keys, as NSS
 *                   softokn was measured to; the bytes are a stand-in, not key material)
 *   P11SHIM_HIDE    comma list of mechanism numbers (hex) the token does not list or know,
 *                   e.g. "0x350" (CKM_GENERIC_SECRET_KEY_GEN: tpm2-pkcs11 has none)
 *
 * Watched: C_Initialize, C_Finalize, C_GenerateKeyPair, C_GenerateKey, C_CreateObject,
 * C_DestroyObject, C_SetPIN. Environment is read on every call, so one process can change it.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST shim;
static unsigned long failed_so_far[8];

static void note(const char *name) {
    const char *path = getenv("P11SHIM_LOG");
    if (!path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s\n", name);
    fclose(f);
}

/* CKR_OK, or the return code P11SHIM_FAIL asks of function `name` (slot `index`) now. */
static CK_RV planned(const char *name, int index) {
    note(name);
    const char *plan = getenv("P11SHIM_FAIL");
    size_t len = strlen(name);
    if (!plan || strncmp(plan, name, len) != 0 || plan[len] != '=') return CKR_OK;
    char *end;
    unsigned long rv = strtoul(plan + len + 1, &end, 16);
    unsigned long times = (*end == 'x') ? strtoul(end + 1, NULL, 10) : ~0UL;
    if (failed_so_far[index] >= times) return CKR_OK;
    failed_so_far[index]++;
    return rv;
}

static int lies(const char *what) {
    const char *lie = getenv("P11SHIM_LIE");
    return lie && strstr(lie, what) != NULL;
}

static CK_RV shim_GetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n) {
    CK_RV rv = real->C_GetAttributeValue(s, o, t, n);
    if (lies("local"))
        for (CK_ULONG i = 0; i < n; i++)
            if (t[i].type == CKA_LOCAL && t[i].pValue && t[i].ulValueLen == sizeof(CK_BBOOL))
                *(CK_BBOOL *)t[i].pValue = CK_FALSE;
    return rv;
}
static CK_RV shim_WrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,
                          CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
    if (!lies("wrap")) return real->C_WrapKey(s, m, wrapping, key, out, out_len);
    if (out) memset(out, 0xAB, *out_len < 40 ? *out_len : 40);
    *out_len = 40;
    return CKR_OK;
}

static int hidden(CK_MECHANISM_TYPE mechanism) {
    const char *list = getenv("P11SHIM_HIDE");
    while (list && *list) {
        char *end;
        unsigned long value = strtoul(list, &end, 16);
        if (end == list) return 0;
        if (value == mechanism) return 1;
        list = (*end == ',') ? end + 1 : end;
    }
    return 0;
}

static CK_RV shim_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
    CK_ULONG all = 0;
    CK_RV rv = real->C_GetMechanismList(slot, NULL, &all);
    if (rv != CKR_OK) return rv;
    CK_MECHANISM_TYPE *found = calloc(all ? all : 1, sizeof *found);
    if (!found) return CKR_HOST_MEMORY;
    rv = real->C_GetMechanismList(slot, found, &all);
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; rv == CKR_OK && i < all; i++)
        if (!hidden(found[i])) found[kept++] = found[i];
    if (rv == CKR_OK && list) {
        if (*count < kept) rv = CKR_BUFFER_TOO_SMALL;
        else memcpy(list, found, kept * sizeof *found);
    }
    *count = kept;
    free(found);
    return rv;
}
static CK_RV shim_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE mechanism, CK_MECHANISM_INFO_PTR info) {
    return hidden(mechanism) ? CKR_MECHANISM_INVALID : real->C_GetMechanismInfo(slot, mechanism, info);
}

static CK_RV shim_Initialize(CK_VOID_PTR args) {
    CK_RV rv = planned("C_Initialize", 0);
    return rv != CKR_OK ? rv : real->C_Initialize(args);
}
static CK_RV shim_Finalize(CK_VOID_PTR reserved) {
    note("C_Finalize");
    return real->C_Finalize(reserved);
}
static CK_RV shim_GenerateKeyPair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub,
                                  CK_ULONG npub, CK_ATTRIBUTE_PTR priv, CK_ULONG npriv,
                                  CK_OBJECT_HANDLE_PTR hpub, CK_OBJECT_HANDLE_PTR hpriv) {
    CK_RV rv = planned("C_GenerateKeyPair", 1);
    return rv != CKR_OK ? rv : real->C_GenerateKeyPair(s, m, pub, npub, priv, npriv, hpub, hpriv);
}
static CK_RV shim_GenerateKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                              CK_OBJECT_HANDLE_PTR h) {
    CK_RV rv = planned("C_GenerateKey", 2);
    return rv != CKR_OK ? rv : real->C_GenerateKey(s, m, t, n, h);
}
static CK_RV shim_CreateObject(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR h) {
    CK_RV rv = planned("C_CreateObject", 3);
    return rv != CKR_OK ? rv : real->C_CreateObject(s, t, n, h);
}
static CK_RV shim_DestroyObject(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h) {
    CK_RV rv = planned("C_DestroyObject", 4);
    return rv != CKR_OK ? rv : real->C_DestroyObject(s, h);
}
static CK_RV shim_SetPIN(CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old, CK_ULONG nold, CK_UTF8CHAR_PTR new_pin,
                         CK_ULONG nnew) {
    CK_RV rv = planned("C_SetPIN", 5);
    return rv != CKR_OK ? rv : real->C_SetPIN(s, old, nold, new_pin, nnew);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
    if (!real) {
        const char *path = getenv("P11SHIM_MODULE");
        void *handle = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        CK_C_GetFunctionList get = handle ? (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList") : NULL;
        if (!get || get(&real) != CKR_OK) return CKR_GENERAL_ERROR;
        shim = *real;
        shim.C_Initialize = shim_Initialize;
        shim.C_Finalize = shim_Finalize;
        shim.C_GenerateKeyPair = shim_GenerateKeyPair;
        shim.C_GenerateKey = shim_GenerateKey;
        shim.C_CreateObject = shim_CreateObject;
        shim.C_DestroyObject = shim_DestroyObject;
        shim.C_SetPIN = shim_SetPIN;
        shim.C_GetAttributeValue = shim_GetAttributeValue;
        shim.C_WrapKey = shim_WrapKey;
        shim.C_GetMechanismList = shim_GetMechanismList;
        shim.C_GetMechanismInfo = shim_GetMechanismInfo;
    }
    *list = &shim;
    return CKR_OK;
}
