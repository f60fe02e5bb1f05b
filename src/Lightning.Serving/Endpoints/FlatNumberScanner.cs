using System.Buffers.Binary;

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
    /// points at. False (nothing written that counts) for nesting, a value past FP32's range, more numbers than <paramref name="destination"/> holds, or anything not JSON.
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
            if (count >= destination.Length || !TryReadNumber(body, ref i, out var value)) return false;
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

    /// <summary>Powers of ten that a double holds exactly.</summary>
    private static readonly double[] ExactPowersOf10 =
        [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

    /// <summary>
    /// Reads one number at <paramref name="i"/>, checking JSON's grammar (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
    /// while gathering its digits. Its value is what <see cref="System.Text.Json.Utf8JsonReader.TryGetDouble"/> gives,
    /// bit for bit: a mantissa of at most 2^53 with |exponent| ≤ 22 is exact in one multiply or divide (Clinger's fast
    /// path, correctly rounded); other numbers go through the same <see cref="System.Buffers.Text.Utf8Parser"/> call the reader makes.
    /// </summary>
    private static bool TryReadNumber(ReadOnlySpan<byte> body, ref int i, out double value)
    {
        value = 0;
        int start = i;
        bool negative = i < body.Length && body[i] == (byte)'-';
        if (negative) i++;
        if (i >= body.Length) return false;
        ulong mantissa = 0;
        int digits = 0, scale = 0;
        if (body[i] == (byte)'0')
        {
            i++;
            digits = 1;
        }
        else if (IsDigit(body[i]))
        {
            ReadDigits(body, ref i, ref mantissa, ref digits);
        }
        else return false;
        if (i < body.Length && body[i] == (byte)'.')
        {
            i++;
            if (i >= body.Length || !IsDigit(body[i])) return false;
            int before = digits;
            ReadDigits(body, ref i, ref mantissa, ref digits);
            scale -= digits - before;
        }
        int exponent = 0;
        bool exponentTooLarge = false;
        if (i < body.Length && (body[i] | 0x20) == (byte)'e')
        {
            i++;
            bool negativeExponent = i < body.Length && body[i] == (byte)'-';
            if (i < body.Length && body[i] is (byte)'+' or (byte)'-') i++;
            if (i >= body.Length || !IsDigit(body[i])) return false;
            for (; i < body.Length && IsDigit(body[i]); i++)
            {
                if (exponent < 1000) exponent = exponent * 10 + (body[i] - '0');
                else exponentTooLarge = true;
            }
            if (negativeExponent) exponent = -exponent;
        }
        scale += exponent;
        // 19 digits cannot overflow a ulong (the mantissa above may have wrapped past that; it is not used then).
        if (digits <= 19 && mantissa <= 1UL << 53 && !exponentTooLarge && scale is >= -22 and <= 22)
        {
            double m = mantissa;
            value = scale < 0 ? m / ExactPowersOf10[-scale] : m * ExactPowersOf10[scale];
            if (negative) value = -value;
            return true;
        }
        var number = body[start..i];
        return System.Buffers.Text.Utf8Parser.TryParse(number, out value, out int consumed) && consumed == number.Length;
    }

    /// <summary>
    /// Appends the run of digits at <paramref name="i"/> to <paramref name="mantissa"/> (wrapping past 19 digits, which
    /// <paramref name="digits"/> then tells), eight and then four at a time where the bytes allow (SWAR, as fast_float's
    /// parse_eight_digits_unrolled), one at a time for the rest: the serial multiply-add per digit was most of a scan.
    /// </summary>
    private static void ReadDigits(ReadOnlySpan<byte> body, ref int i, ref ulong mantissa, ref int digits)
    {
        while (i + 8 <= body.Length)
        {
            ulong eight = BinaryPrimitives.ReadUInt64LittleEndian(body.Slice(i, 8));
            if ((((eight + 0x4646464646464646UL) | (eight - 0x3030303030303030UL)) & 0x8080808080808080UL) != 0) break;
            eight -= 0x3030303030303030UL;
            eight = eight * 10 + (eight >> 8);
            eight = (((eight & 0x000000FF000000FFUL) * (100 + (1000000UL << 32))) + (((eight >> 16) & 0x000000FF000000FFUL) * (1 + (10000UL << 32)))) >> 32;
            mantissa = mantissa * 100_000_000 + (uint)eight;
            digits += 8;
            i += 8;
        }
        if (i + 4 <= body.Length)
        {
            uint four = BinaryPrimitives.ReadUInt32LittleEndian(body.Slice(i, 4));
            if ((((four + 0x46464646u) | (four - 0x30303030u)) & 0x80808080u) == 0)
            {
                four -= 0x30303030u;
                four = four * 10 + (four >> 8);
                four = ((four & 0x00FF00FFu) * (1 + (100u << 16))) >> 16;
                mantissa = mantissa * 10_000 + four;
                digits += 4;
                i += 4;
            }
        }
        for (; i < body.Length && IsDigit(body[i]); i++, digits++) mantissa = mantissa * 10 + (uint)(body[i] - '0');
    }

    private static int SkipWhitespace(ReadOnlySpan<byte> body, int i)
    {
        while (i < body.Length && body[i] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') i++;
        return i;
    }

    private static bool IsDigit(byte b) => (uint)(b - '0') <= 9;
}
