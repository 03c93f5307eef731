package io.adstream.flink;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link JsonFields}: the named top-level fields of one JSON object, tagged by kind. */
class JsonFieldsTest {

    private final JsonFields jsonFields = new JsonFields();

    private String[] fields(String json, String... names) {
        return jsonFields.eval(json.getBytes(StandardCharsets.UTF_8), names);
    }

    @Test
    void tagsEachValueByItsKindInTheOrderAsked() {
        String json =
                "{\"s\": \"caf\\u00e9\\n"
                    + "\", \"n\": 1.50, \"i\": -7, \"e\": 1E2, \"t\": true, \"f\": false, \"z\":"
                    + " null, \"o\": {\"x\": [1]}, \"a\": [1, {\"y\": 2}]}";
        assertThat(fields(json, "a", "o", "z", "f", "t", "e", "i", "n", "s", "absent"))
                .containsExactly(
                        "a", "o", null, "bfalse", "btrue", "n1E2", "n-7", "n1.50", "scafé\n", null);
    }

    @Test
    void numbersKeepTheirExactText() {
        assertThat(
                        fields(
                                "{\"p\": 0.1234565, \"q\": -0.0, \"r\":"
                                        + " 123456789012345678901234567890}",
                                "p",
                                "q",
                                "r"))
                .containsExactly("n0.1234565", "n-0.0", "n123456789012345678901234567890");
    }

    @Test
    void ofDuplicateNamesTheLastWins() {
        assertThat(fields("{\"a\": 1, \"b\": 2, \"a\": \"x\"}", "a", "b"))
                .containsExactly("sx", "n2");
    }

    @Test
    void anEmptyObjectHasOnlyAbsentFields() {
        assertThat(fields(" {} \n", "a")).containsExactly((String) null);
    }

    @Test
    void aLeadingByteOrderMarkIsSkipped() {
        assertThat(fields("\uFEFF{\"a\": 1}", "a")).containsExactly("n1");
    }

    @Test
    void integersUpToPythonsLimitOf4300Digits() {
        String digits = "9".repeat(4300);
        assertThat(fields("{\"a\": " + digits + "}", "a")).containsExactly("n" + digits);
        assertThat(fields("{\"a\": -" + digits + "}", "a")).containsExactly("n-" + digits);
        assertThat(fields("{\"a\": " + digits + "9}", "a")).isNull();
        // Also in fields not asked for, and nested.
        assertThat(fields("{\"a\": 1, \"b\": [{\"c\": " + digits + "9}]}", "a")).isNull();
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "",
                " ",
                "[1]",
                "1",
                "\"a\"",
                "null",
                "{\"a\": 1",
                "{\"a\": 1} x", // garbage after the object
                "{\"a\": 1} {}", // a second value
                "{\"a\": NaN}",
                "{\"a\": Infinity}",
                "{\"a\": 1,}",
                "{'a': 1}",
                "{\"a\": [1, 2}",
                // Also when the invalid value is in a field not asked for.
                "{\"a\": 1, \"b\": \"raw\ttab\"}",
                "{\"a\": 1, \"b\": \"\\q\"}",
                "{\"a\": 1, \"b\": NaN}",
                "{\"a\": 1, \"b\": 01}",
                "{\"a\": 1, \"b\": \"open}",
            })
    void isNullUnlessExactlyOneJsonObject(String json) {
        assertThat(fields(json, "a")).isNull();
    }

    @Test
    void isNullForInvalidUtf8() {
        byte[] invalid = {'{', '"', 'a', '"', ':', '"', (byte) 0xFF, '"', '}'};
        byte[] encodedSurrogate = {
            '{', '"', 'a', '"', ':', '"', (byte) 0xED, (byte) 0xA0, (byte) 0x80, '"', '}'
        };
        assertThat(jsonFields.eval(invalid, "a")).isNull();
        assertThat(jsonFields.eval(encodedSurrogate, "a")).isNull();
        assertThat(jsonFields.eval(null, "a")).isNull();
    }

    @Test
    void namesMayChangeFromCallToCall() {
        assertThat(fields("{\"a\": 1, \"b\": 2}", "a", "b")).containsExactly("n1", "n2");
        assertThat(fields("{\"a\": 1, \"b\": 2}", "b")).containsExactly("n2");
    }

    @Test
    void declaresItselfNonDeterministicSoThePlannerParsesOnce() {
        assertThat(jsonFields.isDeterministic()).isFalse();
    }
}
