namespace Lightning.Serving;

/// <summary>
/// Reads a flat JSON array of numbers straight from the bytes, checking the JSON number grammar itself: the common v2
/// body (one FP32 input, hundreds of short decimals) then costs one pass with no token machinery. It gives up on
/// anything else, leaving the JSON reader to read (or reject) the array as before, so both agree on every body.
/// </summary>
internal static class FlatNumberScanner
{
    /// <summary>
    /// Scans from <paramref name="position"/> (just after '[') to the closing ']', which <paramref name="position"/> then
    /// points at. False (nothing written that counts) for nesting, a number the short-decimal path cannot read exactly,
    /// a value past FP32's range, more numbers than <paramref name="destination"/> holds, or anything not JSON.
    /// </summary>
    public static bool TryScan(ReadOnlySpan<byte> body, ref int position, float[] destination, out int count)
    {
        count = 0;
        int i = position;
        i = SkipWhitespace(body, i);
        if (i < body.Length && body[i] == (byte)']')
        {
            position = i;
            return true;
        }
        while (true)
        {
            int start = i;
            if (!TryNumberEnd(body, ref i)) return false;
            if (count >= destination.Length || !JsonNumberParser.TryParseShortDecimal(body[start..i], out var value)) return false;
            var single = (float)value;
            if (!float.IsFinite(single)) return false;
            destination[count++] = single;
            i = SkipWhitespace(body, i);
            if (i >= body.Length) return false;
            if (body[i] == (byte)']')
            {
                position = i;
                return true;
            }
            if (body[i] != (byte)',') return false;
            i = SkipWhitespace(body, i + 1);
        }
    }

    private static int SkipWhitespace(ReadOnlySpan<byte> body, int i)
    {
        while (i < body.Length && body[i] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') i++;
        return i;
    }

    /// <summary>Moves past one number of JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?</summary>
    private static bool TryNumberEnd(ReadOnlySpan<byte> body, ref int i)
    {
        if (i < body.Length && body[i] == (byte)'-') i++;
        if (i >= body.Length) return false;
        if (body[i] == (byte)'0') i++;
        else if (IsDigit(body[i])) { while (i < body.Length && IsDigit(body[i])) i++; }
        else return false;
        if (i < body.Length && body[i] == (byte)'.')
        {
            i++;
            if (i >= body.Length || !IsDigit(body[i])) return false;
            while (i < body.Length && IsDigit(body[i])) i++;
        }
        if (i < body.Length && (body[i] | 0x20) == (byte)'e')
        {
            i++;
            if (i < body.Length && body[i] is (byte)'+' or (byte)'-') i++;
            if (i >= body.Length || !IsDigit(body[i])) return false;
            while (i < body.Length && IsDigit(body[i])) i++;
        }
        return true;
    }

    private static bool IsDigit(byte b) => (uint)(b - '0') <= 9;
}
