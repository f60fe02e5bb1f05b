using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Lightning.Serving.Tests.Endpoints;

/// <summary>The short-decimal fast path reads numbers bit for bit as the JSON reader does.</summary>
public sealed class JsonNumberParserTests
{
    [Fact]
    public void TryParseShortDecimal_ReadsBitForBitWhatTheReaderReads()
    {
        var random = new Random(11);
        string[] formats = ["R", "G9", "G17", "E6", "F3"];
        var texts = new List<string>
        {
            "0", "-0", "1", "-1", "0.1", "1e22", "1e23", "1e-22", "1e-23", "9007199254740992", "9007199254740993",
            "1234567890123456789", "12345678901234567890", "0.000000000000000000001", "3.4028235e38", "-1e-45", "2.5E+3", "7e0",
        };
        for (int n = 0; n < 20000; n++)
        {
            double value = random.Next(3) switch
            {
                0 => (float)(random.NextDouble() * 2 - 1),
                1 => random.NextDouble() * Math.Pow(10, random.Next(-30, 30)),
                _ => random.Next(-100000, 100000),
            };
            var format = formats[random.Next(formats.Length)];
            texts.Add(n % 2 == 0 ? ((float)value).ToString(format, CultureInfo.InvariantCulture) : value.ToString(format, CultureInfo.InvariantCulture));
        }
        int fast = 0;
        foreach (var text in texts)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            var reader = new Utf8JsonReader(bytes);
            Assert.True(reader.Read(), text);
            Assert.True(reader.TryGetDouble(out var expected), text);

            if (!JsonNumberParser.TryParseShortDecimal(bytes, out var actual)) continue;

            fast++;
            Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual), $"{text}: {actual:R}, not {expected:R}");
        }
        // Most of these take the short path, so the comparison above means something.
        Assert.True(fast > texts.Count / 2, $"{fast} of {texts.Count}");
        Assert.True(JsonNumberParser.TryParseShortDecimal("0.84147096"u8, out _));
    }
}
