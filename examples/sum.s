# Sum the bytes of the input memory (LLVM/kernel dialect; see docs/asm.md).
# A bare program gets r1 = the memory's address and r2 = its length.
    r0 = 0
    if r2 == 0 goto done
loop:
    r3 = *(u8 *)(r1 + 0)
    r0 += r3
    r1 += 1
    r2 += -1
    if r2 != 0 goto loop
done:
    exit
